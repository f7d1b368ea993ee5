package archive_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// TestProofAfterKeyRotation: after two rotations of the archive key, the
// proof of an export receipted by the original key carries that key and
// the announcements from it to the current key, and verifies pinned to
// any of the three keys (an earlier key's receipt vouched for by the
// newer keys' signatures), also after a reopen; an export receipted by
// the middle key verifies pinned to the first and to the last. Without
// the chain, with a broken one, or pinned to a key of no rotation, the
// receipt check fails. The retired public keys are kept in
// RetiredKeysFile.
func TestProofAfterKeyRotation(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k0 := e.a.PublicKey()
	e.accept(c, c.Bundles[0])
	k1 := seedKey("rotated once")
	if _, err := e.a.RotateKey(t.Context(), k1, time.Hour); err != nil {
		t.Fatal(err)
	}
	e.accept(c, c.Bundles[1])
	k2 := seedKey("rotated twice")
	if _, err := e.a.RotateKey(t.Context(), k2, 0); err != nil {
		t.Fatal(err)
	}
	e.accept(c, c.Bundles[2])
	waitIndexed(t, e.a)
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	all := search(t, e.a, archive.ExportQuery{Device: c.DeviceName(), Status: archive.StatusAccepted, Asc: true})
	byBundle := map[string]*archive.ExportEntry{}
	var order []string
	for _, x := range all {
		if _, ok := byBundle[x.Bundle]; !ok {
			byBundle[x.Bundle] = x
			order = append(order, x.Bundle)
		}
	}
	if len(order) != 3 {
		t.Fatalf("exports of %d bundles", len(order))
	}
	prove := func(x *archive.ExportEntry) *proof.Proof {
		t.Helper()
		p, _, err := e.a.ExportProof(t.Context(), x)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	verifies := func(name string, p *proof.Proof, pinned ed25519.PublicKey, want bool) {
		t.Helper()
		o := proof.Options{Trust: trust}
		if pinned != nil {
			o.ArchiveKey = pinned
		}
		rep := proof.Verify(p, o)
		if rep.OK() != want {
			t.Errorf("%s: verified %v, want %v: %v\n%s", name, rep.OK(), want, rep.Failed(), rep)
		}
		if !want && !slices.Contains(rep.Failed(), proof.CheckReceiptSignature) {
			t.Errorf("%s: failed %v, want %s among them", name, rep.Failed(), proof.CheckReceiptSignature)
		}
	}

	check := func(when string) {
		t.Helper()
		old := prove(byBundle[order[0]])
		if key, err := x509.ParsePKIXPublicKey(old.ArchiveKey); err != nil || !k0.Equal(key) || len(old.ArchiveKeyChain) != 2 {
			t.Fatalf("%s: proof of the first export: key %v (%v), chain of %d", when, key, err, len(old.ArchiveKeyChain))
		}
		for i, pinned := range []ed25519.PublicKey{k0, pub(k1), pub(k2), nil} {
			verifies(when+": original key's receipt, pin "+string(rune('0'+i)), old, pinned, true)
		}
		mid := prove(byBundle[order[1]])
		if len(mid.ArchiveKeyChain) != 1 {
			t.Fatalf("%s: proof of the middle export: chain of %d", when, len(mid.ArchiveKeyChain))
		}
		for i, pinned := range []ed25519.PublicKey{k0, pub(k1), pub(k2)} {
			verifies(when+": middle key's receipt, pin "+string(rune('0'+i)), mid, pinned, true)
		}
		cur := prove(byBundle[order[2]])
		if len(cur.ArchiveKeyChain) != 0 {
			t.Fatalf("%s: proof of the newest export carries a chain of %d", when, len(cur.ArchiveKeyChain))
		}
		verifies(when+": current key's receipt, pin 0", cur, k0, true)

		stranger := pub(seedKey("no rotation of this archive"))
		verifies(when+": pinned to a stranger", old, stranger, false)
		none := *old
		none.ArchiveKeyChain = nil
		verifies(when+": without the chain", &none, pub(k2), false)
		short := *old
		short.ArchiveKeyChain = old.ArchiveKeyChain[1:]
		verifies(when+": the chain without its first announcement", &short, pub(k2), false)
		partial := *old
		partial.ArchiveKeyChain = old.ArchiveKeyChain[:1]
		verifies(when+": a chain stopping short of the pinned key", &partial, pub(k2), false)
	}
	check("running")
	e.key = k2
	e.reopen()
	check("reopened")

	rf, err := os.ReadFile(filepath.Join(e.dir, archive.RetiredKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	var kept struct {
		Keys [][]byte `json:"keys"`
		V    int      `json:"v"`
	}
	if err := json.Unmarshal(rf, &kept); err != nil || kept.V != 1 || len(kept.Keys) != 2 ||
		!k0.Equal(ed25519.PublicKey(kept.Keys[0])) || !pub(k1).Equal(ed25519.PublicKey(kept.Keys[1])) {
		t.Fatalf("retired keys file %s: %v", rf, err)
	}

	// Without the file (a rotation by an earlier build) the archive has
	// no key for the original receipts: their proof is refused, naming it.
	if err := os.Remove(filepath.Join(e.dir, archive.RetiredKeysFile)); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if _, _, err := e.a.ExportProof(t.Context(), byBundle[order[0]]); err == nil || !strings.Contains(err.Error(), archive.KeyID(k0)) {
		t.Fatalf("proof without the retired keys: %v", err)
	}
}
