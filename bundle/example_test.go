package bundle_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ExampleSeal journals two records, seals them with a (software) TPM and
// writes the bundle.
func ExampleSeal() {
	ctx := context.Background()
	dev, err := bundletest.NewSoft() // on a device: the tpm package
	if err != nil {
		panic(err)
	}
	at := time.Date(2026, 11, 26, 1, 15, 0, 0, time.UTC)
	payload := []byte(`{"rows":3}`)
	digest := sha256.Sum256(payload)

	var records [][]byte
	var prev [32]byte
	for seq, typ := range []string{custody.TypeAgentStart, custody.TypeExport} {
		r := custody.Record{Seq: uint64(seq), Type: typ, Time: at, Device: "site1/dev1", Prev: prev,
			Actor: custody.Actor{Kind: "principal", ID: "n8n-reports"}}
		if typ == custody.TypeExport {
			_ = r.SetBody(custody.ExportBody{ExportID: "exp-1", App: "n8n", Workflow: "monthly", Purpose: "audit",
				Schema: "report@2", Classification: "internal", Retention: "7y", Destination: "archive",
				Policy:  wire.FormatHash(sha256.Sum256([]byte("policy"))),
				Payload: custody.PayloadRef{Digest: wire.FormatHash(digest), Size: int64(len(payload)), MediaType: "application/json", Canonicalization: "none"}})
		} else {
			_ = r.SetBody(map[string]string{"version": "1"})
		}
		b, err := r.Marshal()
		if err != nil {
			panic(err)
		}
		records = append(records, b)
		prev = merkle.LeafHash(b)
	}

	leaves := [][32]byte{merkle.LeafHash(records[0]), merkle.LeafHash(records[1])}
	root, _, _ := merkle.FoldRange(nil, 0, leaves)
	cp := merkle.Checkpoint{Origin: merkle.Origin("site1/dev1"), Size: 2, Root: root}.Marshal()
	counter, _ := dev.IncrementCounter(ctx)
	nonce := sha256.Sum256(cp)
	quote, _ := dev.Quote(ctx, nonce[:])

	b, err := bundle.Seal(ctx, bundle.SealInput{
		Records: records, Payloads: map[[32]byte][]byte{digest: payload}, Checkpoint: cp,
		Counter: counter, Quote: quote, Identity: dev.Identity(), Signer: dev, Time: at,
	})
	if err != nil {
		panic(err)
	}
	var tar bytes.Buffer
	if err := bundle.Write(&tar, b); err != nil {
		panic(err)
	}
	trust, err := trustfile.NewTrust("site1", "dev1", dev.Identity())
	if err != nil {
		panic(err)
	}
	fmt.Println(len(b.Files), "files, verifies:", verify.Verify(b, trust, nil).OK())
	fmt.Printf("%s", b.Files[bundle.PathBagInfo])
	// Output:
	// 17 files, verifies: true
	// Bag-Software-Agent: edgeseal bundle/2
	// Bagging-Date: 2026-11-26
	// Checkpoint-Size: 2
	// Origin: edgeseal/site1/dev1
	// Payload-Oxum: 891.2
}
