package bundle_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

var fuzzLimits = bundle.Limits{File: 1 << 20, Total: 4 << 20, Files: 64}

func FuzzRead(f *testing.F) {
	c := bundletest.MustChain(f, 1, bundletest.Options{Records: 3, PayloadSize: 16})
	raw, err := c.Bundles[0].Bytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:1024])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := bundle.Read(bytes.NewReader(in), fuzzLimits)
		bb, berr := bundle.ReadBytes(in, fuzzLimits)
		if (err == nil) != (berr == nil) || err != nil && err.Error() != berr.Error() {
			t.Fatalf("Read: %v, ReadBytes: %v", err, berr)
		}
		if err != nil {
			return
		}
		if !maps.EqualFunc(b.Files, bb.Files, bytes.Equal) {
			t.Fatal("Read and ReadBytes read other files")
		}
		out, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatal("accepted a tar that is not the canonical encoding")
		}
		again, err := bundle.Read(bytes.NewReader(out), fuzzLimits)
		if err != nil {
			t.Fatalf("rewritten bundle unreadable: %v", err)
		}
		if !maps.EqualFunc(b.Files, again.Files, bytes.Equal) {
			t.Fatal("round trip changed files")
		}
		// Verification of anything readable must not panic.
		_ = verify.Verify(b, c.Trust, nil)
	})
}

func FuzzParseEnvelope(f *testing.F) {
	c := bundletest.MustChain(f, 1, bundletest.Options{Records: 2})
	f.Add(c.Bundles[0].Files[bundle.PathSeal])
	f.Add([]byte(`{"payload":"","payloadType":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := dsse.ParseEnvelope(in)
		if err != nil {
			return
		}
		out, err := env.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: %v\n%s\n%s", err, in, out)
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	c := bundletest.MustChain(f, 2, bundletest.Options{Records: 2})
	for _, b := range c.Bundles {
		env, err := dsse.ParseEnvelope(b.Files[bundle.PathSeal])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env.Payload)
	}
	// A format 1 statement (one subject).
	legacy, err := os.ReadFile(filepath.Join("testdata", "unique", "v1.tar"))
	if err != nil {
		f.Fatal(err)
	}
	lb, err := bundle.Read(bytes.NewReader(legacy), bundle.DefaultLimits)
	if err != nil {
		f.Fatal(err)
	}
	env, err := dsse.ParseEnvelope(lb.Files[bundle.PathSeal])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env.Payload)
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := bundle.ParseStatement(in)
		if err != nil {
			return
		}
		out, err := st.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
