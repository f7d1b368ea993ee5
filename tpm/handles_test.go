package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// loaded counts the transient objects and the sessions the TPM holds.
func loaded(t *testing.T, tr Transport) (objects, sessions int) {
	t.Helper()
	for _, first := range []uint32{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: first, PropertyCount: 64}.Execute(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs.Handle {
			if uint32(h)>>24 != first>>24 {
				continue
			}
			if first == 0x80000000 {
				objects++
			} else {
				sessions++
			}
		}
	}
	return objects, sessions
}

// TestNoHandleLeft checks, on a TPM without a resource manager, that
// between calls at most the AK and the signing key are loaded, no session
// is left open, and Close leaves nothing.
func TestNoHandleLeft(t *testing.T) {
	in := swtpmtest.Start(t)
	ctx := context.Background()
	tp, err := Open(ctx, in.Spec, Options{StateDir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		o, s := loaded(t, tp.tr)
		if o > 2 || s != 0 {
			t.Fatalf("after %s: %d objects, %d sessions loaded", step, o, s)
		}
	}
	if o, _ := loaded(t, tp.tr); o != 2 {
		t.Fatalf("after open: %d objects loaded, want the AK and the signing key", o)
	}
	d := sha256.Sum256([]byte("d"))
	steps := []struct {
		name string
		f    func() error
	}{
		{"sign", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
		{"quote", func() error { _, err := tp.Quote(ctx, d[:]); return err }},
		{"increment", func() error { _, err := tp.IncrementCounter(ctx); return err }},
		{"datakey", func() error { _, err := tp.DataKey(ctx); return err }},
		{"extend", func() error { return tp.ExtendPCR(ctx, 7, []byte("x")) }},
		{"sign after extend", func() error {
			_, err := tp.Sign(ctx, d[:])
			var mm *PCRMismatchError
			if !errors.As(err, &mm) {
				return err
			}
			return nil
		}},
		{"datakey after extend", func() error {
			_, err := tp.DataKey(ctx)
			var mm *PCRMismatchError
			if !errors.As(err, &mm) {
				return err
			}
			return nil
		}},
		{"reseal", func() error { return tp.ResealDataKey(ctx, make([]byte, 32)) }},
		{"rotate", func() error { _, err := tp.RotateSigningKey(ctx); return err }},
		{"sign after rotate", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
	}
	for _, s := range steps {
		if err := s.f(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		check(s.name)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Sign(ctx, d[:]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
	tr, err := DialSwtpm(ctx, in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if o, s := loaded(t, tr); o != 0 || s != 0 {
		t.Fatalf("after Close: %d objects, %d sessions loaded", o, s)
	}
}

func TestLockHonoursContext(t *testing.T) {
	tp := &TPM{sem: make(chan struct{}, 1), tr: nil}
	tp.sem <- struct{}{} // someone holds the TPM
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tp.Quote(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Quote with a cancelled context while busy: %v", err)
	}
}

// TestEKCertRead stores a certificate-sized blob at the ECC EK certificate
// index and checks Open returns it (read in chunks).
func TestEKCertRead(t *testing.T) {
	in := swtpmtest.Start(t)
	ctx := context.Background()
	tr, err := DialSwtpm(ctx, in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cert := make([]byte, 900)
	for i := range cert {
		cert[i] = byte(i * 7)
	}
	idx := tpm2.TPMHandle(ekCertIndexECC)
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: idx, NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{AuthRead: true, AuthWrite: true, OwnerRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary},
			DataSize:   uint16(len(cert)),
		}),
	}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(cert); off += 512 {
		end := min(off+512, len(cert))
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: idx, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: pub.NVName},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: cert[off:end]},
			Offset:     uint16(off),
		}.Execute(tr)
		if err != nil {
			t.Fatal(err)
		}
	}
	tr.Close()
	tp, err := Open(ctx, in.Spec, Options{StateDir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if got := tp.Identity().EKCert; !bytes.Equal(got, cert) {
		t.Fatalf("EKCert: %d bytes, want the %d stored", len(got), len(cert))
	}
}

// TestOpenFlushesStale: a process that died with the AK and the signing
// key loaded (no Close) does not lock the next Open out of swtpm's object
// slots.
func TestOpenFlushesStale(t *testing.T) {
	in := swtpmtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	tp, err := Open(ctx, in.Spec, Options{StateDir: dir, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	// Die without Close: drop the connection, leave the handles loaded.
	_ = tp.tr.Close()
	for i := range 2 {
		tp2, err := Open(ctx, in.Spec, Options{StateDir: dir})
		if err != nil {
			t.Fatalf("open %d after a crash: %v", i, err)
		}
		if o, s := loaded(t, tp2.tr); o != 2 || s != 0 {
			t.Fatalf("after open: %d objects, %d sessions", o, s)
		}
		_ = tp2.tr.Close() // crash again
	}
}

// TestNoHandleLeftAuthorized is TestNoHandleLeft for keys bound to a
// PCR-policy key: Authorize (LoadExternal, VerifySignature), the
// PolicyAuthorize sessions of Sign and DataKey, a refused authorization
// and the rebinding calls leave at most the AK and the signing key.
func TestNoHandleLeftAuthorized(t *testing.T) {
	in := swtpmtest.Start(t)
	ctx := context.Background()
	op, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ref := []byte("edgeseal test ref")
	tp, err := Open(ctx, in.Spec, Options{StateDir: t.TempDir(), Create: true, PCRPolicy: &PCRPolicy{Key: &op.PublicKey, Ref: ref}})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	authorize := func(key *ecdsa.PrivateKey) error {
		cur, err := tp.ReadPCRs(ctx)
		if err != nil {
			return err
		}
		approved, _ := policyPCRDigest(tp.pcrs, cur)
		sig, _ := ecdsa.SignASN1(rand.Reader, key, attest.AuthorizationDigest(approved, ref))
		return tp.Authorize(ctx, PCRAuthorization{PCRs: tp.pcrs, Values: cur, Signature: sig})
	}
	d := sha256.Sum256([]byte("d"))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, s := range []struct {
		name string
		f    func() error
	}{
		{"sign without authorization", func() error {
			var need *AuthorizationNeededError
			if _, err := tp.Sign(ctx, d[:]); !errors.As(err, &need) {
				return err
			}
			return nil
		}},
		{"refused authorization", func() error {
			var ae *AuthorizationError
			if err := authorize(other); !errors.As(err, &ae) {
				return fmt.Errorf("want *AuthorizationError, got %v", err)
			}
			return nil
		}},
		{"authorize", func() error { return authorize(op) }},
		{"sign", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
		{"datakey", func() error { _, err := tp.DataKey(ctx); return err }},
		{"extend", func() error { return tp.ExtendPCR(ctx, 7, []byte("x")) }},
		{"sign after extend", func() error {
			var mm *PCRMismatchError
			if _, err := tp.Sign(ctx, d[:]); !errors.As(err, &mm) {
				return err
			}
			return nil
		}},
		{"authorize again", func() error { return authorize(op) }},
		{"reseal", func() error { return tp.ResealDataKey(ctx, make([]byte, 32)) }},
		{"datakey after reseal", func() error { _, err := tp.DataKey(ctx); return err }},
		{"rotate", func() error { _, err := tp.RotateSigningKey(ctx); return err }},
		{"sign after rotate", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
	} {
		if err := s.f(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if o, n := loaded(t, tp.tr); o > 2 || n != 0 {
			t.Fatalf("after %s: %d objects, %d sessions loaded", s.name, o, n)
		}
	}
}
