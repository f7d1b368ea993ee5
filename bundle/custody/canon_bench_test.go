package custody

import (
	"strings"
	"testing"
)

// benchRecord is an export record in canonical form; benchRecordIn the
// same record with its members in another order.
var (
	benchRecord   = []byte(`{"actor":{"id":"n8n","kind":"principal","via":"api"},"body":{"app":"node-red","classification":"internal","destination":"archive","exportId":"01JDX7P3ZK9Q4W5E6R7T8Y9U0I","payload":{"canonicalization":"none","digest":"sha256:` + strings.Repeat("07", 32) + `","mediaType":"application/json","size":1024},"policy":"sha256:` + strings.Repeat("09", 32) + `","purpose":"batch quality report","retention":"7y","schema":"quality@1","workflow":"line-3-quality"},"device":"site/dev-1","prev":"sha256:` + strings.Repeat("0", 64) + `","seq":123456,"time":"2026-11-26T01:15:00.000000Z","type":"export","v":1}`)
	benchRecordIn = []byte(`{"v":1,"type":"export","seq":123456,"time":"2026-11-26T01:15:00.000000Z","device":"site/dev-1","actor":{"kind":"principal","id":"n8n","via":"api"},"body":{"workflow":"line-3-quality","app":"node-red","purpose":"batch quality report","exportId":"01JDX7P3ZK9Q4W5E6R7T8Y9U0I","schema":"quality@1","classification":"internal","retention":"7y","destination":"archive","policy":"sha256:` + strings.Repeat("09", 32) + `","payload":{"digest":"sha256:` + strings.Repeat("07", 32) + `","size":1024,"mediaType":"application/json","canonicalization":"none"}},"prev":"sha256:` + strings.Repeat("0", 64) + `"}`)
)

// BenchmarkCanonicalize: appendCanonical of a record.
func BenchmarkCanonicalize(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(benchRecordIn)))
	for b.Loop() {
		if _, err := appendCanonical(buf[:0], benchRecordIn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCanonical: checkCanonicalRecord of a record and the
// members of its actor and payload, as ParseRecord reads them.
func BenchmarkCheckCanonical(b *testing.B) {
	var top, body, sub [16]member
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		t, bd, _, err := checkCanonicalRecord(benchRecord, top[:0], body[:0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := members(sub[:0], t[0].val, t[0].off); err != nil {
			b.Fatal(err)
		}
		if _, err := members(sub[:0], bd[4].val, bd[4].off); err != nil {
			b.Fatal(err)
		}
	}
}
