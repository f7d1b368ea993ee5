package archive_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// contentKey makes the archive's content key and returns the announced
// public key (verified as an agent does).
func (e *env) contentKey() *payloadcipher.PublicKey {
	e.t.Helper()
	raw, err := e.a.NewContentKey(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := archivesig.NewArchiveKeys(archive.DefaultName, e.a.PublicKey()).VerifyContentKey(raw, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := a.PublicKey()
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// TestContentKeyAcceptAndOpen: bundles sealed to the archive's content
// key are accepted; the object store holds no plaintext; OpenPayload
// gives each payload back (also after a reopen, from the key file) and a
// rotation keeps the old key for decryption; the key file is 0600 and
// the announcements are in the archive log.
func TestContentKeyAcceptAndOpen(t *testing.T) {
	e := newEnv(t)
	if _, err := e.a.ContentKeyAnnouncement(); err == nil {
		t.Fatal("an announcement before any content key")
	}
	k1 := e.contentKey()
	c := newChain(t, 2, bundletest.Options{ContentKey: k1})
	e.approve(c)
	if r := e.checkReceipt(e.accept(c, c.Bundles[0]), raw(t, c.Bundles[0]), c.DeviceName()); r.ContentKey != nil {
		t.Fatal("a receipt for payloads sealed to the newest key carries a content key announcement")
	}
	k2 := e.contentKey() // rotation
	if k2.ID == k1.ID {
		t.Fatal("rotation gave the same key")
	}
	// Sealed to the old key: accepted, and the receipt announces the new
	// key, verifiable under the archive key.
	r := e.checkReceipt(e.accept(c, c.Bundles[1]), raw(t, c.Bundles[1]), c.DeviceName())
	if r.ContentKey == nil {
		t.Fatal("a receipt for payloads sealed to the old key carries no content key announcement")
	}
	an, err := archivesig.NewArchiveKeys(archive.DefaultName, e.a.PublicKey()).VerifyContentKey(r.ContentKey, time.Now())
	if err != nil || an.KeyID != k2.ID || an.Seq != 2 {
		t.Fatalf("the receipt announces %+v, %v; want seq 2 %s", an, err, k2.ID)
	}
	e.a.Close()
	e.open()
	if raw, err := e.a.ContentKeyAnnouncement(); err != nil || !bytes.Contains(raw, []byte(`"payloadType":"`+archivesig.ContentKeyPayloadType)) {
		t.Fatalf("announcement after reopen: %v", err)
	}
	fi, err := os.Stat(filepath.Join(e.dir, archive.ContentKeyDir, "1.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	opened := 0
	for _, b := range c.Bundles {
		raw, _ := b.Records()
		for _, line := range raw {
			r, err := custody.ParseRecord(line)
			if err != nil || r.Type != custody.TypeExport {
				continue
			}
			eb, _ := r.ExportBody()
			file, ok := b.Files[bundle.PayloadDir+strings.TrimPrefix(eb.PayloadCipher.Digest, "sha256:")+bundle.EncryptedPayload]
			if !ok {
				continue
			}
			pt, err := e.a.OpenPayload(line, file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(pt, []byte("export ")) {
				t.Fatalf("plaintext %q", pt[:16])
			}
			// No object of the store holds it.
			filepath.Walk(filepath.Join(e.dir, "objects"), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, pt[:32]) {
						t.Fatalf("object %s holds the plaintext", p)
					}
				}
				return nil
			})
			opened++
		}
	}
	if opened < 4 {
		t.Fatalf("opened %d", opened)
	}
}

// TestContentKeyRefusals: the archive refuses, each with a named check,
// a ciphertext moved to another record (verify: payload.cipher; traded
// between two records so that no offline check sees it:
// archive.decrypt), a swapped suite id (payload.cipher), a truncated
// ciphertext (payloads.digest) and payloads sealed to a key it does not
// hold (archive.decrypt), for payload cipher versions 2 and 1 alike; a
// version relabeled to the other known one (archive.decrypt) and an
// unknown version (payload.cipher) too.
func TestContentKeyRefusals(t *testing.T) {
	e := newEnv(t)
	k := e.contentKey()
	for _, v1 := range []bool{false, true} {
		name := map[bool]string{false: "v2", true: "v1"}[v1]
		c := newChain(t, 2, bundletest.Options{Site: "site-" + name, Device: "dev1", ContentKey: k, CipherV1: v1})
		e.approve(c)
		cases := append([]bundletest.Case{
			{Kind: bundletest.SwappedCipher, Want: archive.CheckDecrypt, Target: 0, Prev: -1},
			{Kind: bundletest.RelabeledCipher, Want: archive.CheckDecrypt, Target: 0, Prev: -1},
		}, bundletest.CipherCases...)
		for _, cs := range cases {
			t.Run(name+"/"+cs.Kind, func(t *testing.T) {
				b, _, err := c.TamperCipher(t.Context(), cs)
				if err != nil {
					t.Fatal(err)
				}
				if cs.Want == archive.CheckDecrypt {
					if r := verify.Verify(b, c.Trust, nil); !r.OK() {
						t.Fatalf("%s is meant to pass offline verification:\n%s", cs.Kind, r)
					}
				}
				e.refused(c.Opts.Site, c.Opts.Device, raw(t, b), cs.Want)
			})
		}
	}
	other, _ := payloadcipher.DeriveKey([]byte("a key the archive does not hold"))
	c2 := newChain(t, 1, bundletest.Options{Site: "site2", Device: "dev2", ContentKey: other.Public()})
	e.approve(c2)
	e.refused(c2.Opts.Site, c2.Opts.Device, raw(t, c2.Bundles[0]), archive.CheckDecrypt)
}

// TestContentKeyEscrow: a content key escrowed to an offline recovery
// key is restored from the escrow alone, to the same key; another
// recovery key, another seq and an existing key file are refused.
func TestContentKeyEscrow(t *testing.T) {
	e := newEnv(t)
	k := e.contentKey()
	rec, err := recovery.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.a.EscrowContentKey(t.Context(), 1, rec.Public())
	if err != nil {
		t.Fatal(err)
	}
	esc, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(esc, []byte("PRIVATE KEY")) {
		t.Fatal("the escrow holds the key in the clear")
	}
	dir := t.TempDir()
	other, _ := recovery.GenerateKey()
	if _, err := archive.RestoreContentKeyFile(dir, archive.DefaultName, 1, esc, other); err == nil {
		t.Fatal("restored with another recovery key")
	}
	if _, err := archive.RestoreContentKeyFile(dir, archive.DefaultName, 2, esc, rec); err == nil {
		t.Fatal("restored as another seq")
	}
	id, err := archive.RestoreContentKeyFile(dir, archive.DefaultName, 1, esc, rec)
	if err != nil || id != k.ID {
		t.Fatalf("restored %s, %v; want %s", id, err, k.ID)
	}
	if _, err := archive.RestoreContentKeyFile(dir, archive.DefaultName, 1, esc, rec); err == nil {
		t.Fatal("an existing key file replaced")
	}
}

// TestContentKeyOpsLogged: every content key operation is an entry of
// the archive's signed log: the announcements of a new key and of a
// rotation, an escrow (content key and recovery key ids), and a restore
// of the escrow into another archive, which then opens the payloads
// sealed to the restored key.
func TestContentKeyOpsLogged(t *testing.T) {
	e := newEnv(t)
	k1 := e.contentKey()
	e.contentKey() // rotation
	rec, err := recovery.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.a.EscrowContentKey(t.Context(), 1, rec.Public())
	if err != nil {
		t.Fatal(err)
	}
	esc, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	types := func(a *archive.Archive) []string {
		var ts []string
		for i := range a.LogSize() {
			b, err := a.LogRecord(i)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if typ, _ := m["type"].(string); strings.HasPrefix(typ, "content.key") {
				ts = append(ts, typ)
				if typ != archive.LogContentKeyEntryType && (m["keyId"] != k1.ID || m["recoveryKeyId"] != rec.ID || m["seq"] != 1.0) {
					t.Errorf("%s entry %s", typ, b)
				}
			}
		}
		return ts
	}
	want := []string{archive.LogContentKeyEntryType, archive.LogContentKeyEntryType, archive.LogContentKeyEscrowEntryType}
	if got := types(e.a); !slices.Equal(got, want) {
		t.Fatalf("log entries %v, want %v", got, want)
	}

	// A new archive restores key 1 from its escrow: logged, and it opens
	// what was sealed to that key.
	e2 := newEnv(t)
	c := newChain(t, 1, bundletest.Options{ContentKey: k1})
	if _, err := e2.a.RestoreContentKey(t.Context(), 1, esc, rec); err != nil {
		t.Fatal(err)
	}
	if got := types(e2.a); !slices.Equal(got, []string{archive.LogContentKeyRestoreEntryType}) {
		t.Fatalf("log entries after restore %v", got)
	}
	lines, _ := c.Bundles[0].Records()
	opened := 0
	for _, line := range lines {
		r, err := custody.ParseRecord(line)
		if err != nil || r.Type != custody.TypeExport {
			continue
		}
		eb, _ := r.ExportBody()
		file, ok := c.Bundles[0].Files[bundle.PayloadDir+strings.TrimPrefix(eb.PayloadCipher.Digest, "sha256:")+bundle.EncryptedPayload]
		if !ok {
			continue
		}
		if _, err := e2.a.OpenPayload(line, file); err != nil {
			t.Fatal(err)
		}
		opened++
	}
	if opened == 0 {
		t.Fatal("no payload opened")
	}
	// The restored key survives a reopen without its announcement.
	e2.a.Close()
	e2.open()
	if _, err := e2.a.ContentKeyAnnouncement(); err == nil {
		t.Fatal("an announcement from a restored key alone")
	}
}

// TestContentKeyLargeBundle: a bundle of 80 encrypted payloads (opened
// on several cores) is refused with archive.decrypt when two of its
// ciphertexts traded places, and accepted whole otherwise, its receipt
// announcing the newest key when the payloads were sealed to an older one.
// The 80 payloads are one version 2 window: one decapsulated context.
func TestContentKeyLargeBundle(t *testing.T) {
	e := newEnv(t)
	k := e.contentKey()
	c := newChain(t, 1, bundletest.Options{ContentKey: k, Records: 80, PayloadSize: 64})
	e.approve(c)
	b, _, err := c.TamperCipher(t.Context(), bundletest.Case{Kind: bundletest.SwappedCipher, Want: archive.CheckDecrypt, Target: 0, Prev: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.refused(c.Opts.Site, c.Opts.Device, raw(t, b), archive.CheckDecrypt)
	if n := archive.ContentWindows(e.a); n != 1 {
		t.Fatalf("80 payloads of one version 2 window decapsulated into %d contexts", n)
	}
	e.contentKey() // rotation: the bundle's payloads are sealed to the older key
	if r := e.checkReceipt(e.accept(c, c.Bundles[0]), raw(t, c.Bundles[0]), c.DeviceName()); r.ContentKey == nil {
		t.Fatal("the receipt of payloads sealed to the older key announces no key")
	}
}
