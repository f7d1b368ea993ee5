package api

import (
	"strings"
	"testing"
)

// BenchmarkDecodeExport decodes a 1 KiB JSON envelope, the shape the API
// benchmarks post.
func BenchmarkDecodeExport(b *testing.B) {
	body := []byte(`{"id":"inv-2024-001","workflow":"invoices-daily","app":"n8n","purpose":"month end","schema":"invoice@1",` +
		`"classification":"internal","retention":"finance-10y","destination":"archive","data":{"lines":[` +
		strings.Repeat(`{"sku":"A-100\u00e9","qty":12,"price":-3.25e2,"ok":true,"note":null},`, 12) + `{}]}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeExport(body); err != nil {
			b.Fatal(err)
		}
	}
}
