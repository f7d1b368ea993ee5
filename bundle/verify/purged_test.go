package verify_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// skeleton removes b's payload files and returns their digests.
func skeleton(b *bundle.Bundle) (*bundle.Bundle, [][32]byte) {
	s := &bundle.Bundle{Files: maps.Clone(b.Files)}
	var gone [][32]byte
	for name := range b.Files {
		if d, ok := bundle.PayloadDigestFromPath(name); ok {
			delete(s.Files, name)
			gone = append(gone, d)
		}
	}
	return s, gone
}

func failed(r *verify.Report) []string {
	var l []string
	for _, c := range r.Checks {
		if !c.OK {
			l = append(l, c.Name)
		}
	}
	return l
}

// TestVerifyPurged: a skeleton verifies with its purge list, the payloads
// noted as purged, and keeps the state of the bundle; without the list,
// or with a list that leaves out a payload, or names one still present,
// it fails.
func TestVerifyPurged(t *testing.T) {
	c := bundletest.MustChain(t, 2, bundletest.Options{Records: 9})
	skel, gone := skeleton(c.Bundles[1])
	if len(gone) < 2 {
		t.Fatalf("bundle has %d payloads, want 2 or more", len(gone))
	}
	r := verify.VerifyPurged(skel, c.Trust, c.States[0], gone)
	if !r.OK() {
		t.Fatalf("skeleton with its purge list:\n%s", r)
	}
	if r.State.Checkpoint != c.States[1].Checkpoint {
		t.Fatal("the skeleton leaves another state than the bundle")
	}
	noted := false
	for _, ch := range r.Checks {
		noted = noted || (ch.Name == verify.CheckPayloadsDigest && strings.Contains(ch.Detail, "purged at the archive"))
	}
	if !noted {
		t.Fatalf("payloads.digest does not say the payloads were purged:\n%s", r)
	}
	if r := verify.Verify(skel, c.Trust, c.States[0]); r.OK() {
		t.Fatal("a skeleton verifies as a whole bundle")
	}
	if r := verify.VerifyPurged(skel, c.Trust, c.States[0], gone[1:]); r.OK() {
		t.Fatal("a payload missing without a purge passes")
	} else if f := failed(r); len(f) == 0 {
		t.Fatal("no failed check")
	}
	if r := verify.VerifyPurged(c.Bundles[1], c.Trust, c.States[0], gone); r.OK() {
		t.Fatal("payloads purged but present pass")
	}
	// A purge list on an intact bundle with nothing purged is Verify.
	if r := verify.VerifyPurged(c.Bundles[0], c.Trust, nil, nil); !r.OK() {
		t.Fatalf("intact bundle, empty purge list:\n%s", r)
	}
	// The manifest line of a purged payload keeps its digest, even with
	// the tag manifest recomputed.
	relisted, _ := skeleton(c.Bundles[1])
	gh := fmt.Sprintf("%x", gone[0])
	oldMan := skel.Files[bundle.PathManifest]
	newMan := []byte(strings.Replace(string(oldMan), gh+"  data/payloads/"+gh, strings.Repeat("0", 64)+"  data/payloads/"+gh, 1))
	if string(newMan) == string(oldMan) {
		t.Fatalf("manifest line of %s not found:\n%s", gh, oldMan)
	}
	relisted.Files[bundle.PathManifest] = newMan
	relisted.Files[bundle.PathTagManifest] = []byte(strings.Replace(string(skel.Files[bundle.PathTagManifest]),
		fmt.Sprintf("%x", sha256.Sum256(oldMan)), fmt.Sprintf("%x", sha256.Sum256(newMan)), 1))
	r = verify.VerifyPurged(relisted, c.Trust, c.States[0], gone)
	if f := failed(r); len(f) != 1 || f[0] != verify.CheckBagItManifest {
		t.Fatalf("a purged payload's manifest line with another digest: failed %v\n%s", f, r)
	}
	// Tampering beside a purge is still caught: a record changed.
	bad, _ := skeleton(c.Bundles[1])
	bad.Files[bundle.PathBagInfo] = append([]byte(nil), skel.Files[bundle.PathBagInfo]...)
	bad.Files[bundle.PathBagInfo][0] ^= 1
	if r := verify.VerifyPurged(bad, c.Trust, c.States[0], gone); r.OK() {
		t.Fatal("a skeleton with an altered bag-info passes")
	}
}

// FuzzVerifyPurged replaces one file of a skeleton with fuzzed bytes and
// requires that VerifyPurged, with the skeleton's own purge list, never
// panics and never accepts the changed skeleton (a purge hides payload
// bytes, nothing else).
func FuzzVerifyPurged(f *testing.F) {
	c := bundletest.MustChain(f, 2, bundletest.Options{Records: 5, PayloadSize: 16})
	skel, gone := skeleton(c.Bundles[1])
	if r := verify.VerifyPurged(skel, c.Trust, c.States[0], gone); !r.OK() {
		f.Fatalf("skeleton:\n%s", r)
	}
	names := skel.Names()
	for i, n := range names {
		f.Add(uint8(i), skel.Files[n][:len(skel.Files[n])/2])
		f.Add(uint8(i), append(bytes.Clone(skel.Files[n]), '\n'))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		if bytes.Equal(skel.Files[name], data) {
			return
		}
		b := bundletest.Clone(skel)
		b.Files[name] = data
		if r := verify.VerifyPurged(b, c.Trust, c.States[0], gone); r.OK() {
			t.Fatalf("changed %s of a skeleton verified", name)
		}
	})
}
