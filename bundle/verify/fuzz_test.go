package verify_test

import (
	"bytes"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

func FuzzParseTrust(f *testing.F) {
	c := bundletest.MustChain(f, 1, bundletest.Options{Records: 2})
	raw, _ := c.Trust.Marshal()
	f.Add(raw)
	raw, _ = newAuthChain(f).Trust.Marshal() // version 2
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := trustfile.ParseTrust(in)
		if err != nil {
			return
		}
		out, err := tr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := trustfile.ParseTrust(out)
		if err != nil {
			t.Fatalf("re-marshalled trust rejected: %v", err)
		}
		if again.KeyID != tr.KeyID || !bytes.Equal(again.PolicyDigest, tr.PolicyDigest) {
			t.Fatal("round trip changed trust")
		}
	})
}

func FuzzParseState(f *testing.F) {
	c := bundletest.MustChain(f, 2, bundletest.Options{Records: 2})
	raw, _ := c.States[1].Marshal()
	f.Add(raw)
	raw, _ = newAuthChain(f).States[1].Marshal() // with pcrs
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := verify.ParseState(in)
		if err != nil {
			return
		}
		out, _ := s.Marshal()
		if !bytes.Equal(out, in) {
			t.Fatal("round trip")
		}
	})
}

// FuzzVerifyMutation replaces one file of a good bundle with fuzzed bytes,
// recomputes the BagIt manifests as an attacker would, and requires that
// Verify never panics and never accepts the changed bundle.
func FuzzVerifyMutation(f *testing.F) {
	c := bundletest.MustChain(f, 2, bundletest.Options{Records: 3, PayloadSize: 16})
	good := c.Bundles[1]
	names := good.Names()
	for i, n := range names {
		f.Add(uint8(i), good.Files[n][:len(good.Files[n])/2])
		f.Add(uint8(i), append(bytes.Clone(good.Files[n]), ' '))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		if bytes.Equal(good.Files[name], data) {
			return
		}
		b := bundletest.Clone(good)
		b.Files[name] = data
		_ = b.UpdateManifests()
		switch name {
		case bundle.PathBagInfo:
			// Format 2 seals bag-info.txt: no field of it is free. Only
			// a change of Payload-Oxum alone, which UpdateManifests
			// rewrites back, leaves the bundle as it was.
			if bytes.Equal(b.Files[name], good.Files[name]) {
				return
			}
		case bundle.PathManifest, bundle.PathTagManifest, bundle.PathBagIt:
			b.Files[name] = data
		}
		r := verify.Verify(b, c.Trust, c.States[0])
		if r.OK() {
			t.Fatalf("changed %s verified", name)
		}
	})
}
