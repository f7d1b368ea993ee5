package evidence_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// rotated is a chain of two bundles, the first receipted before the
// archive rotated its key and the second after, and the proof of an
// export of each: the first carries the key chain to the new key.
func rotated(t testing.TB) (*fixture, []*proof.Proof, []byte) {
	t.Helper()
	a, c, log := firstAccepted(t)
	oldKey := log.PKIX()
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Accept(c.Bundles[1]); err != nil {
		t.Fatal(err)
	}
	f := &fixture{a}
	e0, e1 := f.exports(t, 0)[0], f.exports(t, 1)[0]
	p0, err := proof.Build(proof.Input{Bundle: a.Raw[0], ExportID: e0.ExportID, Principal: e0.Principal, Trust: a.Trust,
		Receipt: a.Receipts[0], ArchiveKey: oldKey, ArchiveKeyChain: log.KeyChain()})
	if err != nil {
		t.Fatal(err)
	}
	return f, []*proof.Proof{p0, f.MustProof(t, 1, e1.ExportID)}, oldKey
}

// firstAccepted is a two-bundle chain whose first bundle (only) its
// archive log has accepted, so that a test can rotate the log's key
// before it accepts the second.
func firstAccepted(t testing.TB) (*bundletest.Accepted, *bundletest.Chain, *bundletest.ArchiveLog) {
	t.Helper()
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	log := bundletest.MustArchiveLog(t)
	a := &bundletest.Accepted{Chain: c, Log: log}
	var err error
	if a.Trust, err = c.Trust.Marshal(); err != nil {
		t.Fatal(err)
	}
	if err := a.Accept(c.Bundles[0]); err != nil {
		t.Fatal(err)
	}
	return a, c, log
}

// TestPackAcrossKeyRotation: a pack of an export receipted before a
// rotation of the archive key and one receipted after carries the key
// chain and the earlier key, and verifies pinned to the newest key (the
// older checkpoint under the earlier key the chain vouches for, the
// consistency across the rotation checked), also by the VERIFY.md
// commands, and pinned to the earlier key (which signed the announcement
// too); pinned to an unrelated key, archive.checkpoints fails.
func TestPackAcrossKeyRotation(t *testing.T) {
	f, proofs, oldKey := rotated(t)
	dir := f.pack(t, proofs...)
	p, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := evidence.ParseIndex(p.Files[evidence.PathIndex])
	if err != nil {
		t.Fatal(err)
	}
	a := idx.Archive
	if len(a.KeyChain) != 1 || len(a.EarlierKeys) != 1 || a.KeyID != f.Log.KeyID() || len(a.Checkpoints) != 2 ||
		a.Checkpoints[0].KeyID != a.EarlierKeys[0].Name || a.Checkpoints[1].KeyID != "" || len(a.Consistency) != 1 {
		t.Fatalf("index archive: %+v", a)
	}
	rep := evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: f.Log.PKIX()})
	if !rep.OK() {
		t.Fatalf("pinned to the newest key: %v", rep.Failed())
	}
	if c, _ := checkOf(rep, evidence.CheckCheckpoints); !strings.Contains(c.Detail, "earlier archive keys") {
		t.Errorf("checkpoints detail: %q", c.Detail)
	}
	if c, _ := checkOf(rep, evidence.CheckConsistency); c.NotCompared {
		t.Error("consistency across the rotation not compared")
	}
	if rep := evidence.Verify(p, proof.Options{}); !rep.OK() {
		t.Errorf("unpinned: %v", rep.Failed())
	}
	if rep := evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: oldKey}); !rep.OK() {
		t.Errorf("pinned to the earlier key: %v", rep.Failed())
	}
	other := bundletest.MustArchiveLog(t)
	if rep := evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: other.PKIX()}); !slices.Contains(rep.Failed(), evidence.CheckCheckpoints) {
		t.Errorf("pinned to an unrelated key: %v", rep.Failed())
	}
	// A pack of the export receipted after the rotation alone has no
	// chain of its own: pinned to the earlier key, its receipt's chain
	// leads from it to the pack's key.
	after, err := evidence.ReadDir(f.pack(t, proofs[1]), evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if rep := evidence.Verify(after, proof.Options{Trust: f.Trust, ArchiveKey: oldKey}); !rep.OK() {
		t.Errorf("after the rotation alone, pinned to the earlier key: %v", rep.Failed())
	}
	if rep := evidence.Verify(after, proof.Options{Trust: f.Trust, ArchiveKey: other.PKIX()}); !slices.Contains(rep.Failed(), evidence.CheckCheckpoints) {
		t.Errorf("after the rotation alone, pinned to an unrelated key: %v", rep.Failed())
	}
	if out, err := runRecipe(t, dir, recipe(t, dir)); err != nil {
		t.Fatalf("VERIFY.md commands: %v\n%s", err, out)
	}
}

func checkOf(rep *evidence.Report, name string) (c struct {
	Detail      string
	NotCompared bool
}, ok bool) {
	for _, ch := range rep.Checks {
		if ch.Name == name {
			c.Detail, c.NotCompared = ch.Detail, ch.NotCompared
			return c, true
		}
	}
	return c, false
}

// TestPackAcrossKeyRotationTampered: a pack across a rotation whose key
// chain is dropped or another archive's, or whose older checkpoint is
// signed by an unrelated key (named as its signer or not), fails
// archive.checkpoints pinned to the newest key. Built from an old-key
// proof without the chain, the pack is refused.
func TestPackAcrossKeyRotationTampered(t *testing.T) {
	f, proofs, _ := rotated(t)
	good, err := evidence.ReadDir(f.pack(t, proofs...), evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	other := bundletest.MustArchiveLog(t)
	if err := other.Rotate(); err != nil {
		t.Fatal(err)
	}
	withIndex := func(p *evidence.Pack, fn func(*evidence.Index)) {
		idx, err := evidence.ParseIndex(p.Files[evidence.PathIndex])
		if err != nil {
			t.Fatal(err)
		}
		fn(idx)
		p.Files[evidence.PathIndex] = mustJSON(t, idx)
	}
	oldNote := func(p *evidence.Pack) string {
		idx, _ := evidence.ParseIndex(p.Files[evidence.PathIndex])
		return idx.Archive.Checkpoints[0].File
	}
	for _, tc := range []struct {
		name string
		fn   func(p *evidence.Pack)
	}{
		{"chain.dropped", func(p *evidence.Pack) { withIndex(p, func(i *evidence.Index) { i.Archive.KeyChain = nil }) }},
		{"chain.other", func(p *evidence.Pack) {
			withIndex(p, func(i *evidence.Index) { i.Archive.KeyChain = other.KeyChain() })
		}},
		{"chain.resigned", func(p *evidence.Pack) {
			withIndex(p, func(i *evidence.Index) {
				var env map[string]any
				if err := json.Unmarshal(i.Archive.KeyChain[0], &env); err != nil {
					t.Fatal(err)
				}
				sigs := env["signatures"].([]any)
				sigs[0].(map[string]any)["sig"] = sigs[1].(map[string]any)["sig"]
				i.Archive.KeyChain[0], _ = json.Marshal(env)
			})
		}},
		{"checkpoint.unrelated", func(p *evidence.Pack) {
			p.Files[oldNote(p)] = resignNote(t, p.Files[oldNote(p)], other.Name, other.Priv)
		}},
		{"checkpoint.unrelated.named", func(p *evidence.Pack) {
			name := oldNote(p)
			p.Files[name] = resignNote(t, p.Files[name], other.Name, other.Priv)
			id := archivesig.ArchiveKeyID(other.Pub)
			file := "data/archive/keys/" + strings.TrimPrefix(id, "sha256:") + ".pem"
			p.Files[file] = pemOf(t, other.Pub)
			withIndex(p, func(i *evidence.Index) {
				i.Archive.Checkpoints[0].KeyID = id
				i.Archive.EarlierKeys = append(i.Archive.EarlierKeys, evidence.IndexFile{Name: id, File: file})
			})
		}},
	} {
		p := &evidence.Pack{Files: map[string][]byte{}}
		for k, v := range good.Files {
			p.Files[k] = slices.Clone(v)
		}
		tc.fn(p)
		rehashPack(p)
		rep := evidence.Verify(p, proof.Options{Trust: f.Trust, ArchiveKey: f.Log.PKIX()})
		if rep.OK() || !slices.Contains(rep.Failed(), evidence.CheckCheckpoints) {
			t.Errorf("%s: failed %v, want %s", tc.name, rep.Failed(), evidence.CheckCheckpoints)
		}
		c, _ := checkOf(rep, evidence.CheckCheckpoints)
		t.Logf("%s: %v: %s", tc.name, rep.Failed(), c.Detail)
	}
	bare := *proofs[0]
	bare.ArchiveKeyChain = nil
	if _, err := evidence.Build(t.Context(), evidence.Input{Proofs: []*proof.Proof{&bare, proofs[1]}}); err == nil || !strings.Contains(err.Error(), "key chain") {
		t.Errorf("old-key proof without its chain: %v", err)
	}
}

// resignNote signs the body of a signed note anew with key under name.
func resignNote(t *testing.T, signed []byte, name string, key ed25519.PrivateKey) []byte {
	t.Helper()
	body, _, _ := strings.Cut(string(signed), "\n\n")
	pub := key.Public().(ed25519.PublicKey)
	h := sha256.Sum256(append([]byte(name+"\n\x01"), pub...))
	out, err := note.Sign(&note.Note{Text: body + "\n"}, edSigner{name, binary.BigEndian.Uint32(h[:4]), key})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type edSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s edSigner) Name() string                    { return s.name }
func (s edSigner) KeyHash() uint32                 { return s.hash }
func (s edSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

func pemOf(t *testing.T, k ed25519.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestPackPinnedToMiddleKey: after two rotations, a pack of an export
// receipted by the newest key verifies pinned to the middle key (its
// receipt's chain, from the first key, leads from it to the newest).
func TestPackPinnedToMiddleKey(t *testing.T) {
	a, c, log := firstAccepted(t)
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	middle := log.PKIX()
	if err := log.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Accept(c.Bundles[1]); err != nil {
		t.Fatal(err)
	}
	f := &fixture{a}
	p, err := evidence.ReadDir(f.pack(t, f.MustProof(t, 1, f.exports(t, 1)[0].ExportID)), evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if rep := evidence.Verify(p, proof.Options{Trust: a.Trust, ArchiveKey: middle}); !rep.OK() {
		t.Errorf("pinned to the middle key: %v", rep.Failed())
	}
}
