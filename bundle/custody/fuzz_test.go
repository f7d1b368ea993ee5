package custody_test

import (
	"bytes"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(loadVectors(f).Checkpoint.Body))
	f.Add([]byte("edgeseal/a/b\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cp, err := merkle.ParseCheckpoint(in)
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
	c := bundletest.MustChain(f, 1, bundletest.Options{Records: 5})
	recs, _ := c.Bundles[0].Records()
	for _, r := range recs {
		f.Add(r)
	}
	k, err := payloadcipher.DeriveKey([]byte("custody fuzz content key"))
	if err != nil {
		f.Fatal(err)
	}
	for _, v1 := range []bool{false, true} { // payload cipher versions 2 and 1
		enc := bundletest.MustChain(f, 1, bundletest.Options{Records: 4, ContentKey: k.Public(), CipherV1: v1})
		recs, _ = enc.Bundles[0].Records()
		for _, r := range recs {
			f.Add(r)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := custody.ParseRecord(in)
		// CheckRecord and RecordPayload (pooled, no copies) decide as
		// ParseRecord does.
		if cerr := custody.CheckRecord(in); (cerr == nil) != (err == nil) {
			t.Fatalf("CheckRecord %v, ParseRecord %v", cerr, err)
		}
		d, ok, perr := custody.RecordPayload(in)
		if (perr == nil) != (err == nil) {
			t.Fatalf("RecordPayload %v, ParseRecord %v", perr, err)
		}
		if err != nil {
			return
		}
		fd, enc, fok, ferr := custody.RecordPayloadFile(in)
		if (ferr == nil) != (err == nil) || fok != ok {
			t.Fatalf("RecordPayloadFile %v %v, ParseRecord %v", fok, ferr, err)
		}
		if body, berr := r.ExportBody(); berr == nil {
			if !ok || wire.FormatHash(d) != body.Payload.Digest {
				t.Fatalf("RecordPayload %x %v, export body names %s", d, ok, body.Payload.Digest)
			}
			if c := body.PayloadCipher; (c != nil) != enc || c != nil && wire.FormatHash(fd) != c.Digest || c == nil && fd != d {
				t.Fatalf("RecordPayloadFile %x %v for cipher %+v", fd, enc, c)
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
