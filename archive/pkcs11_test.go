//go:build cgo

package archive_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestPKCS11Signer: the archive signs receipts and checkpoints with a key
// in a SoftHSM2 token, after rotating to it from a key file; a verifier
// knowing only the file key accepts the token key's receipts.
func TestPKCS11Signer(t *testing.T) {
	tok := softhsmtest.New(t, "edgeseal-archive")
	tk, err := keystore.GeneratePKCS11(keystore.PKCS11Config{Module: tok.Module, URI: keystore.URI{Token: tok.Label, Object: "archive"}, PIN: tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	tokenPub := tk.Public().(ed25519.PublicKey)

	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	filePub := e.a.PublicKey()
	e.accept(c, c.Bundles[0])
	if _, err := e.a.RotateKey(t.Context(), tk, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Signer: tk, LogEngine: e.engineName()})
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	if a.KeyID() != archivesig.ArchiveKeyID(tokenPub) {
		t.Fatalf("archive key %s, want the token's", a.KeyID())
	}
	reply := e.accept(c, c.Bundles[1]) // checks the signature and the checkpoint note under the token key
	agent := archivesig.NewArchiveKeys(archive.DefaultName, filePub)
	if _, learned, err := agent.VerifyReceipt(reply, time.Now()); err != nil || len(learned) != 1 {
		t.Fatalf("receipt by the token key, verifier knowing the file key: %v", err)
	}
	if _, err := archivesig.VerifyReceipt(reply, archivesig.ArchiveKeyID(tokenPub), tokenPub); err != nil {
		t.Fatal(err)
	}
}
