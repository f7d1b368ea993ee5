package custody

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// BenchmarkExportRecord is the agent's per-export record work for a
// 1 KiB payload: the export body's record and its template, in clear
// and, for "encrypted", with the payload sealed first (EncryptPayload,
// payload cipher version 2 in a window of 1024): beside each other, the
// encryption's own CPU and allocations per export.
func BenchmarkExportRecord(b *testing.B) {
	k, err := payloadcipher.DeriveKey([]byte("export record benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	s := payloadcipher.NewSealer(0, 0, nil)
	data := []byte(strings.Repeat("x", 1024))
	for _, encrypt := range []bool{false, true} {
		name := "plain"
		if encrypt {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e := ExportBody{ExportID: "01JDX7P3ZK9Q4W5E6R7T8Y9U0I", App: "node-red", Workflow: "line-3-quality",
					Purpose: "batch quality report", Schema: "quality@1", Classification: "internal", Retention: "7y", Destination: "archive",
					Policy: wire.FormatHash([32]byte{9}), Payload: PayloadRef{Digest: wire.FormatHash([32]byte{7}), Size: 1024, MediaType: "application/json", Canonicalization: "none"}}
				if encrypt {
					if _, err := EncryptPayload(&e, "site-a/dev-1", s, pub, data); err != nil {
						b.Fatal(err)
					}
				}
				r := Record{Type: TypeExport, Time: time.Unix(1, 0), Device: "site-a/dev-1", Actor: Actor{Kind: "principal", ID: "n8n", Via: "api"}}
				if err := r.SetExportBody(&e); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Template(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
