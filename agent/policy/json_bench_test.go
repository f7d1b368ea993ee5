package policy

import (
	"strings"
	"testing"
)

// BenchmarkDecodeJSON reads about 1 KiB of export data into the values
// the schema validator takes.
func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"invoice_no":"INV-2024-001","customer":{"name":"ACME \u00e9 GmbH","vat":"DE123"},"lines":[` +
		strings.Repeat(`{"sku":"A-100","qty":12,"price":-3.25e2,"ok":true,"note":null},`, 12) + `{}],"total":1234.5}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
