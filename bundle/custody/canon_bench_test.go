package custody

import (
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// benchRecord is an export record in canonical form; benchRecordIn the
// same record with its members in another order.
var (
	benchRecord   = []byte(`{"actor":{"id":"n8n","kind":"principal","via":"api"},"body":{"app":"node-red","classification":"internal","destination":"archive","exportId":"01JDX7P3ZK9Q4W5E6R7T8Y9U0I","payload":{"canonicalization":"none","digest":"sha256:` + strings.Repeat("07", 32) + `","mediaType":"application/json","size":1024},"policy":"sha256:` + strings.Repeat("09", 32) + `","purpose":"batch quality report","retention":"7y","schema":"quality@1","workflow":"line-3-quality"},"device":"site/dev-1","prev":"sha256:` + strings.Repeat("0", 64) + `","seq":123456,"time":"2026-11-26T01:15:00.000000Z","type":"export","v":1}`)
	benchRecordIn = []byte(`{"v":1,"type":"export","seq":123456,"time":"2026-11-26T01:15:00.000000Z","device":"site/dev-1","actor":{"kind":"principal","id":"n8n","via":"api"},"body":{"workflow":"line-3-quality","app":"node-red","purpose":"batch quality report","exportId":"01JDX7P3ZK9Q4W5E6R7T8Y9U0I","schema":"quality@1","classification":"internal","retention":"7y","destination":"archive","policy":"sha256:` + strings.Repeat("09", 32) + `","payload":{"digest":"sha256:` + strings.Repeat("07", 32) + `","size":1024,"mediaType":"application/json","canonicalization":"none"}},"prev":"sha256:` + strings.Repeat("0", 64) + `"}`)
)

// BenchmarkCanonicalize: canonjson.Append of a record.
func BenchmarkCanonicalize(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(benchRecordIn)))
	for b.Loop() {
		if _, err := canonjson.Append(buf[:0], benchRecordIn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCanonical: canonjson.CheckMembers of a record and the
// members of its actor and payload, as ParseRecord reads them.
func BenchmarkCheckCanonical(b *testing.B) {
	var top, body, sub [16]member
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		t, bd, _, err := canonjson.CheckMembers(benchRecord, top[:0], body[:0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := members(sub[:0], t[0].Val, t[0].Off); err != nil {
			b.Fatal(err)
		}
		if _, err := members(sub[:0], bd[4].Val, bd[4].Off); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordMarshal(b *testing.B) {
	r := templateRecord(b, TypeExport, ExportBody{ExportID: "01JDX7P3ZK9Q4W5E6R7T8Y9U0I", App: "node-red", Workflow: "line-3-quality",
		Purpose: "batch quality report", Schema: "quality@1", Classification: "internal", Retention: "7y", Destination: "archive",
		Policy: wire.FormatHash([32]byte{9}), Payload: PayloadRef{Digest: wire.FormatHash([32]byte{7}), Size: 1024, MediaType: "application/json", Canonicalization: "none"}})
	r.Seq = 123456
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
