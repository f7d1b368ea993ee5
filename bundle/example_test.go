package bundle_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
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
	for seq, typ := range []string{bundle.TypeAgentStart, bundle.TypeExport} {
		r := bundle.Record{Seq: uint64(seq), Type: typ, Time: at, Device: "site1/dev1", Prev: prev,
			Actor: bundle.Actor{Kind: "principal", ID: "n8n-reports"}}
		if typ == bundle.TypeExport {
			_ = r.SetBody(bundle.ExportBody{ExportID: "exp-1", App: "n8n", Workflow: "monthly", Purpose: "audit",
				Schema: "report@2", Classification: "internal", Retention: "7y", Destination: "archive",
				Policy:  bundle.FormatHash(sha256.Sum256([]byte("policy"))),
				Payload: bundle.PayloadRef{Digest: bundle.FormatHash(digest), Size: int64(len(payload)), MediaType: "application/json", Canonicalization: "none"}})
		} else {
			_ = r.SetBody(map[string]string{"version": "1"})
		}
		b, err := r.Marshal()
		if err != nil {
			panic(err)
		}
		records = append(records, b)
		prev = bundle.LeafHash(b)
	}

	leaves := [][32]byte{bundle.LeafHash(records[0]), bundle.LeafHash(records[1])}
	root, _, _ := bundle.FoldRange(nil, 0, leaves)
	cp := bundle.Checkpoint{Origin: bundle.Origin("site1/dev1"), Size: 2, Root: root}.Marshal()
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
	trust, err := bundle.NewTrust("site1", "dev1", dev.Identity())
	if err != nil {
		panic(err)
	}
	fmt.Println(len(b.Files), "files, verifies:", bundle.Verify(b, trust, nil).OK())
	fmt.Printf("%s", b.Files[bundle.PathBagInfo])
	// Output:
	// 17 files, verifies: true
	// Bag-Software-Agent: edgeseal bundle/2
	// Bagging-Date: 2026-11-26
	// Checkpoint-Size: 2
	// Origin: edgeseal/site1/dev1
	// Payload-Oxum: 891.2
}

// ExampleVerify checks a chain of bundles the way `edgeseal verify` does:
// each against the device's trust file and the state the previous left.
func ExampleVerify() {
	chain, err := bundletest.NewChain(context.Background(), nil, 2, bundletest.Options{})
	if err != nil {
		panic(err)
	}
	trustJSON, _ := chain.Trust.Marshal() // DEVICE.json, approved at enrollment
	trust, err := bundle.ParseTrust(trustJSON)
	if err != nil {
		panic(err)
	}
	var state *bundle.State
	for _, b := range chain.Bundles {
		raw, _ := b.Bytes()
		rb, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			panic(err)
		}
		rep := bundle.Verify(rb, trust, state)
		fmt.Println(rep.OK(), len(rep.Checks), "checks")
		state = rep.State
	}
	// A replayed bundle is caught by name.
	rep := bundle.Verify(chain.Bundles[0], trust, state)
	fmt.Println(rep.OK(), rep.Failed())
	// Output:
	// true 34 checks
	// true 34 checks
	// false [checkpoint.previous records.time quote.clock counter.rising previous.leaf]
}
