package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"
)

func FuzzDecodeFrame(f *testing.F) {
	b := bundleBytes("fuzz", 3000)
	for _, fr := range EncodeChunks("000000000001", sha256.Sum256(b), b, 1024) {
		f.Add(fr)
	}
	f.Add([]byte("ESB1\x00\x00\x00\x02{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data)
		if err != nil {
			if fr != nil {
				t.Fatal("frame and error")
			}
			return
		}
		// A frame that decodes re-encodes to the same bytes when it is the
		// whole bundle (count 1): the format has one spelling.
		if fr.Count == 1 {
			again := EncodeChunks(fr.ID, fr.Digest, fr.Chunk, len(data)+MinMessage)
			if len(again) != 1 || !bytes.Equal(again[0], data) {
				t.Fatalf("decoded frame does not re-encode identically")
			}
		}
		if fr.Index >= fr.Count || int64(len(fr.Chunk)) > fr.Size || binary.BigEndian.Uint32(data[4:8]) > MaxHeader {
			t.Fatalf("inconsistent frame accepted: %+v", fr)
		}
	})
}

// FuzzAssembler feeds frames cut from the input to a tightly bounded
// assembler: it must never exceed its bounds, and a bundle it returns
// must hash to the announced digest.
func FuzzAssembler(f *testing.F) {
	b := bundleBytes("fuzz-asm", 2500)
	var seed []byte
	for _, fr := range EncodeChunks("id", sha256.Sum256(b), b, 1024) {
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(fr)))
		seed = append(seed, fr...)
	}
	f.Add(seed)
	f.Add([]byte{0, 3, 'E', 'S', 'B'})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewAssembler(AssemblerLimits{MaxPartials: 4, MaxBytes: 8 << 10, MaxBundle: 4 << 10})
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			n = min(n, len(data))
			src := "s/d"
			if n%2 == 1 {
				src = "s/e"
			}
			c, err := a.Add(src, data[:n])
			data = data[n:]
			if err == nil && c != nil && sha256.Sum256(c.Bundle) != c.Digest {
				t.Fatal("bundle returned with a wrong digest")
			}
			if st := a.Stats(); st.Partials > 4 || st.Bytes > 8<<10 || st.Bytes < 0 {
				t.Fatalf("bounds: %+v", st)
			}
		}
	})
}

// FuzzVerifyEnrollAck: whatever comes on a device's enroll/reply topic is
// refused or is a signed, canonical answer that signs again to the same
// payload.
func FuzzVerifyEnrollAck(f *testing.F) {
	keys := newArchiveKeys(f)
	for _, a := range []*EnrollAck{
		{Device: "s/d", Request: "sha256:" + strings.Repeat("ab", 32), KeyID: "sha256:k", Status: EnrollPending, Time: "2026-01-01T00:00:00Z"},
		{Device: "s/d", Request: "sha256:" + strings.Repeat("cd", 32), Status: EnrollRefused, Reason: "revoked", Time: "2026-01-01T00:00:00Z"},
	} {
		raw, err := SignEnrollAck(a, keys.KeyID, keys.Priv)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"payloadType":"application/vnd.edgeseal.enroll-ack+json","payload":"e30=","signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := VerifyEnrollAck(data, "", keys.Pub)
		if err != nil {
			if a != nil {
				t.Fatal("answer and error")
			}
			return
		}
		if a.check() != nil {
			t.Fatalf("accepted an answer that does not check: %+v", a)
		}
		again, err := SignEnrollAck(a, keys.KeyID, keys.Priv)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := VerifyEnrollAck(again, keys.KeyID, keys.Pub); err != nil || *b != *a {
			t.Fatalf("re-signed answer differs: %+v %v", b, err)
		}
	})
}
