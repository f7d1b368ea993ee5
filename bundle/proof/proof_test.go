package proof_test

import (
	"os"
	"path/filepath"

	"bytes"
	"errors"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestBuildVerify builds the proof of an export of each bundle of a chain
// and verifies it, pinned and unpinned; it carries the export's record and
// payload and no other export's.
func TestBuildVerify(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{})
	for i := range f.Raw {
		e := f.export(t, i)
		p := f.MustProof(t, i, e.ExportID)
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := proof.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, opts := range []proof.Options{{}, {Trust: f.Trust, ArchiveKey: f.Log.PKIX()}} {
			rep := proof.Verify(q, opts)
			if !rep.OK() {
				t.Fatalf("bundle %d export %s: %v\n%s", i, e.ExportID, rep.Failed(), rep)
			}
			if len(rep.Checks) != len(proof.CheckNames) {
				t.Fatalf("%d checks, want %d", len(rep.Checks), len(proof.CheckNames))
			}
		}
		// No other export's record or payload.
		exps, _ := proof.Exports(f.Chain.Bundles[i])
		recs, _ := f.Chain.Bundles[i].Records()
		for _, o := range exps {
			if o.ExportID == e.ExportID {
				continue
			}
			if bytes.Contains(raw, []byte(`exportId\":\"`+o.ExportID)) || bytes.Contains(raw, []byte(o.ExportID)) {
				t.Fatalf("proof of %s names export %s", e.ExportID, o.ExportID)
			}
			for _, r := range recs {
				if strings.Contains(string(r), o.ExportID) && bytes.Contains(raw, r) {
					t.Fatalf("proof of %s carries the record of %s", e.ExportID, o.ExportID)
				}
			}
		}
	}
}

// TestPinned fails trust.device and receipt.signature when the proof
// carries another trust file or archive key than the pinned ones.
func TestPinned(t *testing.T) {
	f := newFixture(t, 1, bundletest.Options{})
	g := newFixture(t, 1, bundletest.Options{})
	p := f.MustProof(t, 0, f.export(t, 0).ExportID)
	rep := proof.Verify(p, proof.Options{Trust: g.Trust, ArchiveKey: g.Log.PKIX()})
	for _, want := range []string{proof.CheckTrust, proof.CheckReceiptSignature} {
		if !slices.Contains(rep.Failed(), want) {
			t.Errorf("pinned other keys: %s did not fail: %v", want, rep.Failed())
		}
	}
}

// TestSelect: an unknown id is ErrNotFound, an id of two principals is an
// AmbiguousError listing both.
func TestSelect(t *testing.T) {
	exps := []proof.Export{{ExportID: "a", Principal: "p1", Device: "s/d"}, {ExportID: "a", Principal: "p2", Device: "s/d"}, {ExportID: "b", Principal: "p1", Device: "s/d"}}
	if _, err := proof.Select(exps, "c", "", ""); !errors.Is(err, proof.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	_, err := proof.Select(exps, "a", "", "")
	var amb *proof.AmbiguousError
	if !errors.As(err, &amb) || len(amb.Candidates) != 2 || !strings.Contains(err.Error(), "p2") {
		t.Fatalf("ambiguous id: %v", err)
	}
	if e, err := proof.Select(exps, "a", "p2", ""); err != nil || e.Principal != "p2" {
		t.Fatalf("narrowed: %v %v", e, err)
	}
}

// TestBuildRefusesOtherReceipt: a receipt for another bundle is refused.
func TestBuildRefusesOtherReceipt(t *testing.T) {
	f := newFixture(t, 2, bundletest.Options{})
	_, err := proof.Build(proof.Input{Bundle: f.Raw[0], ExportID: f.export(t, 0).ExportID, Trust: f.Trust, Receipt: f.Receipts[1], ArchiveKey: f.Log.PKIX()})
	if err == nil || !strings.Contains(err.Error(), "receipt is for bundle") {
		t.Fatalf("receipt of another bundle: %v", err)
	}
}

// TestPurgedPayload: an export whose payload a purge record of its bundle
// deleted is proven with that record and no payload, and verifies with a
// note; the same proof without the purge record fails payload.digest.
func TestPurgedPayload(t *testing.T) {
	f := newFixture(t, 1, bundletest.Options{})
	exps, _ := proof.Exports(f.Chain.Bundles[0])
	for _, e := range exps {
		if _, ok := f.Payload(0, e.Payload); ok {
			continue
		}
		p := f.MustProof(t, 0, e.ExportID)
		if p.Payload != nil || len(p.Records) != 2 || !strings.Contains(p.Records[1].Record, `"type":"retention.purge"`) {
			t.Fatalf("purged export's proof: payload %d bytes, %d records", len(p.Payload), len(p.Records))
		}
		rep := proof.Verify(p, proof.Options{})
		if c, _ := rep.Get(proof.CheckPayloadDigest); !rep.OK() || !strings.Contains(c.Detail, "purged") {
			t.Fatalf("purged export: %v %+v", rep.Failed(), c)
		}
		p.Records = p.Records[:1]
		if rep := proof.Verify(p, proof.Options{}); !slices.Contains(rep.Failed(), proof.CheckPayloadDigest) {
			t.Fatalf("payload withheld without a purge record: %v", rep.Failed())
		}
		return
	}
	t.Fatal("the chain purged no payload")
}

// TestArchiveKeyRotated: a bundle receipted after the archive rotated its
// key is proven from the first key (the proof carries the new one, which
// the receipt's key chain leads to) and verifies pinned to the first key;
// pinned to an unrelated key it fails receipt.signature.
func TestArchiveKeyRotated(t *testing.T) {
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	log := bundletest.MustArchiveLog(t)
	if _, err := log.Accept(c.Bundles[0]); err != nil {
		t.Fatal(err)
	}
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	rc, err := log.Accept(c.Bundles[1])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := c.Bundles[1].Bytes()
	trust, _ := c.Trust.Marshal()
	exps, _ := proof.Exports(c.Bundles[1])
	root := []byte(log.Root())
	p, err := proof.Build(proof.Input{Bundle: raw, ExportID: exps[0].ExportID, Trust: trust, Receipt: rc, ArchiveKey: root})
	if err != nil {
		t.Fatal(err)
	}
	if rep := proof.Verify(p, proof.Options{Trust: trust, ArchiveKey: root}); !rep.OK() {
		t.Fatalf("rotated archive key: %v\n%s", rep.Failed(), rep)
	}
	other := bundletest.MustArchiveLog(t)
	if rep := proof.Verify(p, proof.Options{ArchiveKey: []byte(other.Pub)}); !slices.Contains(rep.Failed(), proof.CheckReceiptSignature) {
		t.Fatalf("unrelated pinned key: %v", rep.Failed())
	}
}

// TestPCRAuthorized: a device bound to a PCR-policy key quoting values its
// operator authorized after enrollment (corpus dev4) is proven with that
// authorization; without it, or with one the operator's key did not sign,
// quote.pcrs fails.
func TestPCRAuthorized(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "corpus")
	trust, err := os.ReadFile(filepath.Join(dir, "trust", "site1-dev4.json"))
	if err != nil {
		t.Fatal(err)
	}
	var auths [][]byte
	for _, n := range []string{"dev4-0.tar", "dev4-1.tar"} {
		b, err := bundle.ReadFile(filepath.Join(dir, "good", n))
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := b.Records()
		for _, r := range recs {
			if rec, err := custody.ParseRecord(r); err == nil && rec.Type == custody.TypePCRsAuthorized {
				auths = append(auths, rec.Body)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "good", "dev4-2.tar"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := bundle.ReadBytes(raw, bundle.DefaultLimits)
	log, _ := bundletest.NewArchiveLog()
	rc, err := log.Accept(b)
	if err != nil {
		t.Fatal(err)
	}
	exps, _ := proof.Exports(b)
	build := func(auths [][]byte) *proof.Proof {
		p, err := proof.Build(proof.Input{Bundle: raw, ExportID: exps[0].ExportID, Principal: exps[0].Principal, Trust: trust, Receipt: rc, ArchiveKey: log.PKIX(), PCRAuthorizations: auths})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := build(auths)
	rep := proof.Verify(p, proof.Options{})
	if c, _ := rep.Get(proof.CheckQuotePCRs); !rep.OK() || !strings.Contains(c.Detail, "authorized") {
		t.Fatalf("with the authorization: %v %+v", rep.Failed(), c)
	}
	stripped := *p
	stripped.PCRAuthorization = nil
	if rep := proof.Verify(&stripped, proof.Options{}); !slices.Equal(rep.Failed(), []string{proof.CheckQuotePCRs}) {
		t.Fatalf("without the authorization: %v", rep.Failed())
	}
	p.PCRAuthorization = []byte(strings.Replace(string(p.PCRAuthorization), `"time":"`, `"time":"1`, 1))
	if rep := proof.Verify(p, proof.Options{}); !slices.Contains(rep.Failed(), proof.CheckQuotePCRs) {
		t.Fatalf("a changed authorization: %v", rep.Failed())
	}
}

// TestArchiveKeyPinnedMiddle: after two rotations, a receipt by the
// newest key (its chain from the first key) verifies pinned to the middle
// key: the announcements before it are skipped, the one after learned.
func TestArchiveKeyPinnedMiddle(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	log := bundletest.MustArchiveLog(t)
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	middle := log.PKIX()
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	rc, err := log.Accept(c.Bundles[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := c.Bundles[0].Bytes()
	trust, _ := c.Trust.Marshal()
	exps, _ := proof.Exports(c.Bundles[0])
	p, err := proof.Build(proof.Input{Bundle: raw, ExportID: exps[0].ExportID, Principal: exps[0].Principal, Trust: trust, Receipt: rc, ArchiveKey: log.PKIX()})
	if err != nil {
		t.Fatal(err)
	}
	if rep := proof.Verify(p, proof.Options{Trust: trust, ArchiveKey: middle}); !rep.OK() {
		t.Fatalf("pinned to the middle key: %v\n%s", rep.Failed(), rep)
	}
}
