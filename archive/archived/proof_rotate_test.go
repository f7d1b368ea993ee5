package archived_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/sync"
)

// TestProofAPIAfterKeyRotation: after the archive rotates its key, the
// read API still serves the proof of an export receipted by the original
// key, and it verifies pinned to the new key (the proof's key chain) as
// well as to the original; the proof of an export receipted after the
// rotation verifies pinned to either too.
func TestProofAPIAfterKeyRotation(t *testing.T) {
	dir := t.TempDir()
	cfg, pool := apiConfig(t, dir, "", apiUser{name: "alice", roles: []string{api.RoleAuditor}})
	ar := e2etest.StartArchive(t, cfg)
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Records: 4})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, c)
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) { receipts <- bytes.Clone(p) }); err != nil {
		t.Fatal(err)
	}
	publish(t, ar, receipts, c.Bundles[0])
	original := ar.A.PublicKey()
	next := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	if _, err := ar.A.RotateKey(t.Context(), next, 0); err != nil {
		t.Fatal(err)
	}
	publish(t, ar, receipts, c.Bundles[1])
	if err := ar.A.WaitIndexed(t.Context(), ar.A.LogSize()); err != nil {
		t.Fatal(err)
	}
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	alice := newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	all := alice.all("/v1/exports?device=site1/dev1&status=accepted&order=asc&limit=1000")
	if len(all) < 2 || all[0].Bundle == all[len(all)-1].Bundle {
		t.Fatalf("%d exports indexed", len(all))
	}
	for _, e := range []string{all[0].Export, all[len(all)-1].Export} {
		pr, err := proof.Parse(alice.get("/v1/exports/site1/dev1/"+url.PathEscape(e)+"/proof", http.StatusOK, nil))
		if err != nil {
			t.Fatal(err)
		}
		for name, pin := range map[string]ed25519.PublicKey{"the new key": next.Public().(ed25519.PublicKey), "the original key": original} {
			if rep := proof.Verify(pr, proof.Options{Trust: trust, ArchiveKey: pin}); !rep.OK() {
				t.Errorf("proof of %s pinned to %s: %v\n%s", e, name, rep.Failed(), rep)
			}
		}
	}
	// The evidence pack of the device's exports on both sides of the
	// rotation carries the original key and the chain, and verifies
	// pinned to the new key.
	lastAt, err := wire.ParseTime(all[len(all)-1].Time)
	if err != nil {
		t.Fatal(err)
	}
	q := "device=site1/dev1&from=" + url.QueryEscape(all[0].Time) + "&to=" + url.QueryEscape(wire.FormatTime(lastAt.Add(time.Second)))
	resp, body := alice.do("GET", "/v1/evidence?"+q, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("evidence across the rotation: %d %s", resp.StatusCode, body)
	}
	pack, err := readclient.ReadPack(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := evidence.ParseIndex(pack.Files[evidence.PathIndex])
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Archive.KeyChain) != 1 || len(idx.Archive.EarlierKeys) != 1 || idx.Archive.EarlierKeys[0].Name != archivesig.ArchiveKeyID(original) {
		t.Fatalf("pack's archive keys: %+v", idx.Archive)
	}
	if rep := evidence.Verify(pack, proof.Options{Trust: trust, ArchiveKey: next.Public().(ed25519.PublicKey)}); !rep.OK() || len(rep.Exports) != len(all) {
		t.Fatalf("pack across the rotation pinned to the new key: %v, %d of %d exports", rep.Failed(), len(rep.Exports), len(all))
	}
}
