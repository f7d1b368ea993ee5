package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// Append a record with a payload, then prove it is in the tree.
func ExampleJournal_Append() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	j, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()

	export := []byte("quarterly report")
	digest := sha256.Sum256(export)
	a, err := j.Append(ctx, store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			return fmt.Appendf(nil, `{"seq":%d,"prev":"sha256:%x","payload":"sha256:%x"}`, seq, prev, digest), nil
		},
		Payloads: []store.Payload{{Digest: digest, Data: export}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	root, _ := j.Root(a.Size)
	proof, _ := j.InclusionProof(a.Seq, a.Size)
	p := make(tlog.RecordProof, len(proof))
	for i := range proof {
		p[i] = proof[i]
	}
	err = tlog.CheckRecord(p, int64(a.Size), root, int64(a.Seq), a.Leaf)
	fmt.Printf("seq %d, size %d, proof ok: %v\n", a.Seq, a.Size, err == nil)
	// Output: seq 0, size 1, proof ok: true
}
