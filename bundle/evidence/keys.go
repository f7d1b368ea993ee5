package evidence

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// The archive keys of a pack. A pack's receipts and checkpoints may be
// signed by keys the archive has since rotated away from: the pack then
// carries the key announcements (Index.Archive.KeyChain) from the oldest
// of those keys to the pack's key (the newest, the one an auditor pins),
// and the earlier keys as PEM files (Index.Archive.EarlierKeys). Each
// announcement is signed by the key it retires and by the key it
// announces: the pinned key's signature vouches for its predecessor, and
// so on back.

// earlierKeyFile is the path of an earlier archive key's PEM file.
func earlierKeyFile(id string) string {
	return "data/archive/keys/" + strings.TrimPrefix(id, "sha256:") + ".pem"
}

func pemKey(k ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// packKeys picks the pack's archive key and key chain for the proofs'
// archive keys (keys[i] of proofs[i]): the one key when all share it;
// else the newest key of the longest key chain the proofs carry, which
// must lead from every other proof's key, trimmed to start at the
// announcement retiring the oldest of them.
func packKeys(proofs []*proof.Proof, keys []ed25519.PublicKey) (ed25519.PublicKey, [][]byte, error) {
	distinct := map[string]bool{}
	var chain [][]byte
	for i, k := range keys {
		distinct[archivesig.ArchiveKeyID(k)] = true
		if c := proofs[i].ArchiveKeyChain; len(c) > len(chain) {
			chain = c
		}
	}
	if len(chain) == 0 {
		if len(distinct) > 1 {
			return nil, nil, errors.New("the receipts are signed by different archive keys and no proof carries the key chain linking them (build the proofs from the archive)")
		}
		return keys[0], nil, nil
	}
	retires := map[string]int{} // old key id -> index of its announcement
	var newest ed25519.PublicKey
	for i, raw := range chain {
		_, a, err := archivesig.ParseArchiveKey(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("key chain: %w", err)
		}
		retires[a.OldKeyID] = i
		newest = ed25519.PublicKey(a.NewKey)
	}
	start := len(chain)
	for i, k := range keys {
		id := archivesig.ArchiveKeyID(k)
		if k.Equal(newest) {
			continue
		}
		at, ok := retires[id]
		if !ok {
			return nil, nil, fmt.Errorf("export %q: its receipt's archive key %s is not one the key chain leads from", proofs[i].ExportID, id)
		}
		start = min(start, at)
	}
	for i, p := range proofs { // each proof's chain is the tail of the longest
		if c := p.ArchiveKeyChain; len(c) > 0 && !slices.EqualFunc(c, chain[len(chain)-len(c):], func(a, b []byte) bool { return string(a) == string(b) }) {
			return nil, nil, fmt.Errorf("export %q: its proof's key chain is not the others'", proofs[i].ExportID)
		}
	}
	if start == len(chain) {
		return newest, nil, nil
	}
	return newest, chain[start:], nil
}

// archiveKeys checks the pack's key chain against the key it trusts
// (the pinned key, else the pack's) and returns the keys it vouches for
// by id. Without a chain that is the pack's key alone.
func (c *packChecker) archiveKeys() (*archivesig.ArchiveKeys, error) {
	keys, err := c.packChain()
	if err != nil || c.opts.ArchiveKey == nil {
		return keys, err
	}
	pk, err := parseKey(c.opts.ArchiveKey)
	if err != nil {
		return nil, fmt.Errorf("pinned archive key: %w", err)
	}
	if pk.Equal(c.akey) {
		return keys, nil
	}
	// Pinned to an earlier key: one the pack's chain retires, or one
	// the receipts' key chains lead from to the pack's key.
	pid := archivesig.ArchiveKeyID(pk)
	if got, ok := c.chainKeys()[pid]; ok && got.Equal(pk) {
		return keys, nil
	}
	fwd := archivesig.NewArchiveKeys(c.idx.Archive.Origin, pk)
	for _, e := range c.exps {
		for _, raw := range e.receipt.KeyChain {
			_, _ = fwd.Learn(raw) // those before the pinned key are refused
		}
	}
	if _, cur := fwd.Current(); !c.akey.Equal(cur) {
		return nil, fmt.Errorf("the pack's archive key %s is not the pinned key %s nor one a key chain leads to from it", c.idx.Archive.KeyID, pid)
	}
	return keys, nil
}

// packChain checks the pack's own key chain: learned from the earlier
// key its first announcement retires, it leads to the pack's key, and
// every earlier key is one it retires.
func (c *packChecker) packChain() (*archivesig.ArchiveKeys, error) {
	a := c.idx.Archive
	trusted := c.akey
	if len(a.KeyChain) == 0 {
		if len(a.EarlierKeys) > 0 {
			return nil, errors.New("earlier archive keys without a key chain")
		}
		return archivesig.NewArchiveKeys(a.Origin, trusted), nil
	}
	_, first, err := archivesig.ParseArchiveKey(a.KeyChain[0])
	if err != nil {
		return nil, fmt.Errorf("key chain: %w", err)
	}
	earlier := map[string]ed25519.PublicKey{}
	for _, f := range a.EarlierKeys {
		k, err := c.pemFile(f.File)
		if err != nil {
			return nil, err
		}
		if archivesig.ArchiveKeyID(k) != f.Name || f.File != earlierKeyFile(f.Name) {
			return nil, fmt.Errorf("%s is not the archive key %s", f.File, f.Name)
		}
		earlier[f.Name] = k
	}
	oldest, ok := earlier[first.OldKeyID]
	if !ok {
		return nil, fmt.Errorf("the key chain starts at %s, not an earlier key of the pack", first.OldKeyID)
	}
	keys := archivesig.NewArchiveKeys(a.Origin, oldest)
	if _, err := keys.LearnChain(a.KeyChain); err != nil {
		return nil, fmt.Errorf("key chain: %w", err)
	}
	if id, cur := keys.Current(); !trusted.Equal(cur) {
		return nil, fmt.Errorf("the key chain leads to %s, not to the archive key %s", id, a.KeyID)
	}
	linked := map[string]bool{first.OldKeyID: true}
	for _, raw := range a.KeyChain[:len(a.KeyChain)-1] {
		if _, an, err := archivesig.ParseArchiveKey(raw); err == nil {
			linked[an.NewKeyID] = true // learned: its id is its key's
		}
	}
	for id := range earlier {
		if !linked[id] {
			return nil, fmt.Errorf("earlier archive key %s is not one the key chain retires", id)
		}
	}
	return keys, nil
}

// chainKeys are the keys of the pack's key chain (checked by packChain)
// by id: those it announces and the earlier key it starts from.
func (c *packChecker) chainKeys() map[string]ed25519.PublicKey {
	out := map[string]ed25519.PublicKey{}
	for _, f := range c.idx.Archive.EarlierKeys {
		if k, err := c.pemFile(f.File); err == nil {
			out[f.Name] = k
		}
	}
	for _, raw := range c.idx.Archive.KeyChain {
		if _, an, err := archivesig.ParseArchiveKey(raw); err == nil {
			out[an.NewKeyID] = ed25519.PublicKey(an.NewKey)
		}
	}
	return out
}

// pemFile reads an Ed25519 public key from a PEM file of the pack.
func (c *packChecker) pemFile(name string) (ed25519.PublicKey, error) {
	blk, rest := pem.Decode(c.p.Files[name])
	if blk == nil || blk.Type != "PUBLIC KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New(name + ": not one PUBLIC KEY block")
	}
	k, err := parseKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// parseKey reads an Ed25519 key given raw (32 bytes) or as PKIX DER.
func parseKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	k, err := x509.ParsePKIXPublicKey(b)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return ek, nil
}
