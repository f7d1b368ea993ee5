package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// announceContentKey signs a content key announcement of seq for key with the
// archive key priv.
func announceContentKey(t *testing.T, priv ed25519.PrivateKey, seq uint64, key *payloadcipher.PrivateKey) []byte {
	t.Helper()
	a := &archivesig.ContentKeyAnnouncement{Origin: "edgeseal-archive", Seq: seq, Time: "2026-12-07T10:00:00.000000Z"}
	raw, err := archivesig.SignContentKey(a, key.Public(), archivesig.ArchiveKeyID(priv.Public().(ed25519.PublicKey)), priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestContentKeyRotation: the core seals payloads to the announced
// content key, then to the newer one after a rotation mid-run (an older
// announcement does not take it back); every bundle verifies without a
// private key, carries ciphertexts only, and each payload opens with the
// private key it was sealed to (and not with the other). Payloads are
// sealed with payload cipher version 2, one window per key.
func TestContentKeyRotation(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	tr := r.trust()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := archivesig.NewArchiveKeys("edgeseal-archive", pub)
	k1, _ := payloadcipher.DeriveKey([]byte("content key one"))
	k2, _ := payloadcipher.DeriveKey([]byte("content key two"))
	use := func(seq uint64, k *payloadcipher.PrivateKey) bool {
		ck, err := ContentKeyFromAnnouncement(announceContentKey(t, priv, seq, k), keys, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return r.core.UseContentKey(ck)
	}
	// An announcement signed by another key is refused.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ContentKeyFromAnnouncement(announceContentKey(t, other, 1, k1), keys, time.Now()); err == nil {
		t.Fatal("a content key signed by an untrusted key was taken")
	}

	var prev *verify.State
	opened := map[string]int{}
	windows := map[string]string{} // enc -> the content key id of its window
	round := func(tag string) {
		r.export(3, tag)
		_, b := r.seal()
		prev = mustVerify(t, b, tr, prev)
		raw, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range raw {
			rec, err := custody.ParseRecord(line)
			if err != nil || rec.Type != custody.TypeExport {
				continue
			}
			e, _ := rec.ExportBody()
			if e.PayloadCipher == nil {
				t.Fatalf("export %s in plaintext", e.ExportID)
			}
			file := b.Files[bundle.PayloadDir+strings.TrimPrefix(e.PayloadCipher.Digest, "sha256:")+bundle.EncryptedPayload]
			if e.PayloadCipher.Version() != payloadcipher.V2 || len(file) < payloadcipher.EncSize {
				t.Fatalf("export %s sealed with payload cipher version %d", e.ExportID, e.PayloadCipher.Version())
			}
			if id, ok := windows[string(file[:payloadcipher.EncSize])]; ok && id != e.PayloadCipher.KeyID {
				t.Fatalf("a window spans content keys %s and %s", id, e.PayloadCipher.KeyID)
			}
			windows[string(file[:payloadcipher.EncSize])] = e.PayloadCipher.KeyID
			for _, k := range []*payloadcipher.PrivateKey{k1, k2} {
				pt, err := custody.DecryptPayload(rec, k, file, nil)
				if (err == nil) != (k.ID == e.PayloadCipher.KeyID) {
					t.Fatalf("export %s sealed to %s opened with %s: %v", e.ExportID, e.PayloadCipher.KeyID, k.ID, err)
				}
				if err == nil {
					if !bytes.HasPrefix(pt, []byte("a,b\n"+tag)) {
						t.Fatalf("plaintext %q", pt)
					}
					for _, f := range b.Files {
						if bytes.Contains(f, pt) {
							t.Fatalf("the bundle holds the plaintext of %s", e.ExportID)
						}
					}
					opened[k.ID]++
				}
			}
		}
	}
	if !use(1, k1) {
		t.Fatal("first key not used")
	}
	round("k1")
	if !use(2, k2) {
		t.Fatal("rotated key not used")
	}
	if use(1, k1) {
		t.Fatal("an older announcement took the key back")
	}
	round("k2")
	if opened[k1.ID] != 3 || opened[k2.ID] != 3 {
		t.Fatalf("opened %v", opened)
	}
	// Version 2: the three payloads to each key share one window; the
	// rotation opened a new one.
	if len(windows) != 2 {
		t.Fatalf("6 payloads to 2 keys in %d windows", len(windows))
	}
	if got := r.core.ContentKey(); got.Key.ID != k2.ID {
		t.Fatal(fmt.Sprint("in use ", got.Key.ID))
	}
}

// TestIngestEncryptsByPolicy: with a content key, an export is journaled
// with its ciphertext only (the journal has no copy of the plaintext)
// unless the policy lists its classification in
// plaintext_classifications; a repeated id is still answered with the
// original receipt.
func TestIngestEncryptsByPolicy(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	src, err := os.ReadFile("policy/testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(append([]byte("plaintext_classifications: [confidential]\n"), src...), os.DirFS("policy/testdata"))
	if err != nil {
		t.Fatal(err)
	}
	r.core.opts.Policy = pol
	k, _ := payloadcipher.DeriveKey([]byte("ingest content key"))
	r.core.UseContentKey(&ContentKey{Key: k.Public(), Seq: 1})
	ctx := t.Context()
	enc, err := r.core.Ingest(ctx, n8n, "test", invoice("inv-enc"))
	if err != nil {
		t.Fatal(err)
	}
	plainReq := invoice("inv-plain")
	plainReq.Classification = "confidential"
	plainText := strings.Replace(testInvoice, "INV-000123", "INV-000124", 1)
	plainReq.Data = []byte(plainText)
	plain, err := r.core.Ingest(ctx, n8n, "test", plainReq)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.core.Ingest(ctx, n8n, "test", invoice("inv-enc"))
	if err != nil || !again.Duplicate || again.Seq != enc.Seq {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	eb, _ := mustRecord(t, r.j, enc.Seq).ExportBody()
	if eb.PayloadCipher == nil || eb.PayloadCipher.KeyID != k.ID {
		t.Fatalf("internal export not encrypted: %+v", eb.PayloadCipher)
	}
	if _, err := r.j.Payload(mustHash(t, eb.Payload.Digest)); err == nil {
		t.Fatal("the journal keeps the plaintext of an encrypted export")
	}
	ct, err := r.j.Payload(mustHash(t, eb.PayloadCipher.Digest))
	if err != nil || bytes.Contains(ct, []byte(testInvoice)) {
		t.Fatalf("ciphertext: %v", err)
	}
	pt, err := custody.DecryptPayload(mustRecord(t, r.j, enc.Seq), k, ct, nil)
	if err != nil || string(pt) != testInvoice {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	pb, _ := mustRecord(t, r.j, plain.Seq).ExportBody()
	if pb.PayloadCipher != nil {
		t.Fatal("a plaintext classification was encrypted")
	}
	if got, err := r.j.Payload(mustHash(t, pb.Payload.Digest)); err != nil || string(got) != plainText {
		t.Fatalf("plaintext payload: %v", err)
	}
	bad := invoice("")
	bad.Workflow = "no-such-workflow"
	if _, err := r.core.Ingest(ctx, n8n, "test", bad); err == nil {
		t.Fatal("an unknown workflow was accepted")
	}
	if n := checkCachedFiles(t, r.core); n < 3 {
		t.Fatalf("%d cached records name their payload file, want the two exports and the refusal", n)
	}
}

// checkCachedFiles checks that the payload file the seal cache holds for
// a record, when its builder named it, is the one the record names, and
// returns how many it checked.
func checkCachedFiles(t *testing.T, c *Core) int {
	t.Helper()
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	n := 0
	for seq, cr := range c.cache.recs {
		if !cr.file.known {
			continue
		}
		d, encrypted, has, err := custody.RecordPayloadFile(cr.rec)
		if err != nil || has != cr.file.has || has && (d != cr.file.digest || encrypted != cr.file.encrypted) {
			t.Errorf("record %d: cached payload file %+v, the record names %x (encrypted %v, has %v, %v)", seq, cr.file, d, encrypted, has, err)
		}
		n++
	}
	return n
}

// TestLearnContentKey: a content key announcement that came with a
// receipt is taken when it verifies and is newer: journaled as a
// content.key record (once; the bundle holding it verifies), kept in
// ContentKeyFile and used for the next payloads; an older or the same
// one changes nothing, one signed by an untrusted key is refused, and a
// core that encrypts nothing takes none.
func TestLearnContentKey(t *testing.T) {
	dir := t.TempDir()
	r := openSimRigAt(t, dir, func(o *Options) { o.StateDir = dir })
	tr := r.trust()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := archivesig.NewArchiveKeys("edgeseal-archive", pub)
	k1, _ := payloadcipher.DeriveKey([]byte("learned key one"))
	k2, _ := payloadcipher.DeriveKey([]byte("learned key two"))
	ctx := t.Context()
	a2 := announceContentKey(t, priv, 2, k2)
	if took, err := r.core.LearnContentKey(ctx, a2, keys); took || err != nil {
		t.Fatalf("a core without a content key took one: %v %v", took, err)
	}
	ck1, err := ContentKeyFromAnnouncement(announceContentKey(t, priv, 1, k1), keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.core.UseContentKey(ck1)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if took, err := r.core.LearnContentKey(ctx, announceContentKey(t, other, 3, k2), keys); took || err == nil {
		t.Fatalf("an announcement by an untrusted key: %v %v", took, err)
	}
	size := r.j.Size()
	for i := range 2 {
		took, err := r.core.LearnContentKey(ctx, a2, keys)
		if err != nil || took != (i == 0) {
			t.Fatalf("learn %d: %v %v", i, took, err)
		}
	}
	if took, _ := r.core.LearnContentKey(ctx, announceContentKey(t, priv, 1, k1), keys); took {
		t.Fatal("an older announcement was taken")
	}
	if got := r.core.ContentKey(); got.Key.ID != k2.ID || got.Seq != 2 {
		t.Fatalf("in use %s seq %d", got.Key.ID, got.Seq)
	}
	if r.j.Size() != size+1 {
		t.Fatalf("journal grew by %d records, want 1", r.j.Size()-size)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ContentKeyFile)); err != nil || !bytes.Equal(b, a2) {
		t.Fatalf("%s: %v", ContentKeyFile, err)
	}
	r.export(2, "after")
	_, b := r.seal()
	mustVerify(t, b, tr, nil)
	raw, _ := b.Records()
	learned, sealedTo := 0, map[string]int{}
	for _, line := range raw {
		rec, err := custody.ParseRecord(line)
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Type {
		case custody.TypeContentKey:
			if !bytes.Equal(rec.Body, a2) || rec.Actor.Kind != "archive" {
				t.Fatalf("content.key record %s", line)
			}
			learned++
		case custody.TypeExport:
			e, _ := rec.ExportBody()
			sealedTo[e.PayloadCipher.KeyID]++
		}
	}
	if learned != 1 || sealedTo[k2.ID] != 2 || len(sealedTo) != 1 {
		t.Fatalf("content.key records %d, payloads sealed to %v", learned, sealedTo)
	}
}

// Encrypted exports of one window are journaled with the window's
// encapsulated key as their shared prefix: each reads back from the
// journal as its whole ciphertext file (the window's enc, then its own
// AES-256-GCM ciphertext), under the digest its record names, and opens.
func TestIngestJournalsWindowPrefix(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	src, err := os.ReadFile("policy/testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(src, os.DirFS("policy/testdata"))
	if err != nil {
		t.Fatal(err)
	}
	r.core.opts.Policy = pol
	k, _ := payloadcipher.DeriveKey([]byte("window content key"))
	r.core.UseContentKey(&ContentKey{Key: k.Public(), Seq: 1})
	ctx := t.Context()
	var files [][]byte
	for i := range 3 {
		req := invoice(fmt.Sprint("inv-window-", i))
		text := strings.Replace(testInvoice, "INV-000123", fmt.Sprint("INV-10000", i), 1)
		req.Data = []byte(text)
		rc, err := r.core.Ingest(ctx, n8n, "test", req)
		if err != nil {
			t.Fatal(err)
		}
		rec := mustRecord(t, r.j, rc.Seq)
		eb, _ := rec.ExportBody()
		if eb.PayloadCipher == nil || eb.PayloadCipher.V != payloadcipher.V2 {
			t.Fatalf("export %d: cipher %+v, want version 2", i, eb.PayloadCipher)
		}
		file, err := r.j.Payload(mustHash(t, eb.PayloadCipher.Digest))
		if err != nil || len(file) != payloadcipher.EncSize+len(text)+payloadcipher.TagSize {
			t.Fatalf("export %d: journaled file of %d bytes, %v", i, len(file), err)
		}
		if payloadcipher.Digest(file) != eb.PayloadCipher.Digest {
			t.Fatalf("export %d: journaled file is not the one its record names", i)
		}
		if pt, err := custody.DecryptPayload(rec, k, file, nil); err != nil || string(pt) != text {
			t.Fatalf("export %d: decrypt: %v", i, err)
		}
		files = append(files, file)
	}
	for _, f := range files[1:] {
		if !bytes.Equal(f[:payloadcipher.EncSize], files[0][:payloadcipher.EncSize]) {
			t.Fatal("exports of one window do not share its encapsulated key")
		}
	}
}
