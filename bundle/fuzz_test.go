package bundle_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

var fuzzLimits = bundle.Limits{File: 1 << 20, Total: 4 << 20, Files: 64}

func FuzzRead(f *testing.F) {
	c := newChain(f, 1, bundletest.Options{Records: 3, PayloadSize: 16})
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
		_ = bundle.Verify(b, c.Trust, nil)
	})
}

func FuzzParseEnvelope(f *testing.F) {
	c := newChain(f, 1, bundletest.Options{Records: 2})
	f.Add(c.Bundles[0].Files[bundle.PathSeal])
	f.Add([]byte(`{"payload":"","payloadType":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := bundle.ParseEnvelope(in)
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
	c := newChain(f, 2, bundletest.Options{Records: 2})
	for _, b := range c.Bundles {
		env, err := bundle.ParseEnvelope(b.Files[bundle.PathSeal])
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
	env, err := bundle.ParseEnvelope(lb.Files[bundle.PathSeal])
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

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(loadVectors(f).Checkpoint.Body))
	f.Add([]byte("edgeseal/a/b\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cp, err := bundle.ParseCheckpoint(in)
		if err != nil {
			return
		}
		if !bytes.Equal(cp.Marshal(), in) {
			t.Fatalf("round trip %q", in)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(loadVectors(f).Record.Canonical))
	c := newChain(f, 1, bundletest.Options{Records: 5})
	recs, _ := c.Bundles[0].Records()
	for _, r := range recs {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := bundle.ParseRecord(in)
		// CheckRecord and RecordPayload (pooled, no copies) decide as
		// ParseRecord does.
		if cerr := bundle.CheckRecord(in); (cerr == nil) != (err == nil) {
			t.Fatalf("CheckRecord %v, ParseRecord %v", cerr, err)
		}
		d, ok, perr := bundle.RecordPayload(in)
		if (perr == nil) != (err == nil) {
			t.Fatalf("RecordPayload %v, ParseRecord %v", perr, err)
		}
		if err != nil {
			return
		}
		if body, berr := r.ExportBody(); berr == nil {
			if !ok || bundle.FormatHash(d) != body.Payload.Digest {
				t.Fatalf("RecordPayload %x %v, export body names %s", d, ok, body.Payload.Digest)
			}
		} else if ok {
			t.Fatalf("RecordPayload names %x in a %s record", d, r.Type)
		}
		out, err := r.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: %v", err)
		}
		// What the fast canonical check accepts, RFC 8785 agrees with.
		if j, err := jcs.Transform(in); err != nil || !bytes.Equal(j, in) {
			t.Fatalf("accepted bytes are not JCS canonical: %v", err)
		}
	})
}

func FuzzParseTrust(f *testing.F) {
	c := newChain(f, 1, bundletest.Options{Records: 2})
	raw, _ := c.Trust.Marshal()
	f.Add(raw)
	raw, _ = newAuthChain(f).Trust.Marshal() // version 2
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := bundle.ParseTrust(in)
		if err != nil {
			return
		}
		out, err := tr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := bundle.ParseTrust(out)
		if err != nil {
			t.Fatalf("re-marshalled trust rejected: %v", err)
		}
		if again.KeyID != tr.KeyID || !bytes.Equal(again.PolicyDigest, tr.PolicyDigest) {
			t.Fatal("round trip changed trust")
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	raw, _, _ := archiveReceipt(f, 5, 3)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		env, r, err := bundle.ParseReceipt(in)
		if err != nil {
			return
		}
		out, err := r.Marshal()
		if err != nil || !bytes.Equal(out, env.Payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseState(f *testing.F) {
	c := newChain(f, 2, bundletest.Options{Records: 2})
	raw, _ := c.States[1].Marshal()
	f.Add(raw)
	raw, _ = newAuthChain(f).States[1].Marshal() // with pcrs
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := bundle.ParseState(in)
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
	c := newChain(f, 2, bundletest.Options{Records: 3, PayloadSize: 16})
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
		r := bundle.Verify(b, c.Trust, c.States[0])
		if r.OK() {
			t.Fatalf("changed %s verified", name)
		}
	})
}

func FuzzParsePCRAuthorization(f *testing.F) {
	for _, name := range []string{"valid.json", "other-values.json", "unknown-field.json", "missing-value.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "pcrauth", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	key := readKey(f, "policy-key.pem")
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := bundle.ParsePCRAuthorization(in)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a statement that parses the same,
		// and verifying it must not panic.
		out, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := bundle.ParsePCRAuthorization(out)
		if err != nil {
			t.Fatalf("re-encoded statement refused: %v", err)
		}
		if again.ApprovedPolicy != a.ApprovedPolicy || again.Device != a.Device || again.PolicyRef != a.PolicyRef {
			t.Fatal("round trip changed the statement")
		}
		_ = a.Verify(&key.PublicKey, a.Device)
	})
}

func FuzzParseArchiveKey(f *testing.F) {
	for _, v := range makeArchiveKeyVectors(f) {
		f.Add([]byte(v.Announcement))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		env, a, err := bundle.ParseArchiveKey(in)
		if err != nil {
			return
		}
		if env.VerifyEd25519(a.NewKeyID, a.NewKey) != nil {
			t.Fatal("accepted an announcement not signed by its new key")
		}
		if out, err := env.Marshal(); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes that do not round-trip: %v", err)
		}
		k := bundle.NewArchiveKeys(a.Origin)
		if ok, err := k.Learn(in); ok || err == nil {
			t.Fatal("learned an announcement without trusting its old key")
		}
	})
}

func FuzzParseKeyChainFile(f *testing.F) {
	vs := makeArchiveKeyVectors(f)
	b, err := (&bundle.KeyChainFile{Origin: "edgeseal-archive", Announcements: [][]byte{[]byte(vs[0].Announcement)}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"announcements":[],"origin":"a","v":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		kf, err := bundle.ParseKeyChainFile(in)
		if err != nil {
			return
		}
		out, err := kf.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes that do not round-trip: %v", err)
		}
	})
}
