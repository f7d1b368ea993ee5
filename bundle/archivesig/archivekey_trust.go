package archivesig

import (
	"bytes"
	"crypto/ed25519"
	"time"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ArchiveKeys is what a verifier trusts of one archive's keys: the keys
// it was configured with (roots) and the keys it learned from
// announcements signed by a key it trusted already. It is not safe for
// concurrent use.
//
// A key is accepted for a receipt (Key) when it is the newest key of its
// chain, or when the receipt's log index is below the LogSize of the
// announcement that retired it (the receipt was signed before the switch:
// valid for ever), or while that announcement's overlap lasts. An
// announcement is learned (Learn) only when it is for the verifier's
// origin, its old key is trusted and signed it, and no other
// announcement retired that key already (a fork is refused).
type ArchiveKeys struct {
	origin string
	keys   map[string]*archiveKey
	chain  [][]byte // learned announcements, in the order learned
}

type archiveKey struct {
	pub     ed25519.PublicKey
	retired *ArchiveKeyAnnouncement // nil: current
	raw     []byte                  // the announcement that retired it
}

// NewArchiveKeys trusts roots for the archive whose log origin is origin.
func NewArchiveKeys(origin string, roots ...ed25519.PublicKey) *ArchiveKeys {
	k := &ArchiveKeys{origin: origin, keys: map[string]*archiveKey{}}
	for _, r := range roots {
		if len(r) == ed25519.PublicKeySize {
			k.keys[ArchiveKeyID(r)] = &archiveKey{pub: r}
		}
	}
	return k
}

// Origin is the archive origin announcements must name.
func (k *ArchiveKeys) Origin() string { return k.origin }

// Chain returns the announcements learned, in the order learned.
func (k *ArchiveKeys) Chain() [][]byte { return k.chain }

// Learn verifies an announcement and trusts its new key. It reports
// whether the announcement was new; one learned before is not an error.
// A refused announcement is an *ArchiveKeyError (or a format error).
func (k *ArchiveKeys) Learn(raw []byte) (bool, error) {
	env, a, err := ParseArchiveKey(raw)
	if err != nil {
		return false, err
	}
	if a.Origin != k.origin {
		return false, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "announcement for archive " + a.Origin + ", want " + k.origin}
	}
	old := k.keys[a.OldKeyID]
	if old == nil {
		return false, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "announcement signed by " + a.OldKeyID + ", a key not trusted"}
	}
	if err := env.VerifyEd25519(a.OldKeyID, old.pub); err != nil {
		return false, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "announcement's signature by the old key " + a.OldKeyID + " does not verify"}
	}
	if old.retired != nil {
		if bytes.Equal(old.raw, raw) {
			return false, nil
		}
		return false, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "key " + a.OldKeyID + " was already rotated to " + old.retired.NewKeyID + " (a second announcement for it is refused)"}
	}
	if _, ok := k.keys[a.NewKeyID]; ok {
		return false, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "announced key is known already (a rotation back is refused)"}
	}
	old.retired, old.raw = a, raw
	k.keys[a.NewKeyID] = &archiveKey{pub: ed25519.PublicKey(a.NewKey)}
	k.chain = append(k.chain, raw)
	return true, nil
}

// LearnChain learns each announcement of chain in order, skipping those
// learned before; it stops at the first one refused.
func (k *ArchiveKeys) LearnChain(chain [][]byte) (learned [][]byte, err error) {
	for _, raw := range chain {
		ok, err := k.Learn(raw)
		if err != nil {
			return learned, err
		}
		if ok {
			learned = append(learned, raw)
		}
	}
	return learned, nil
}

// Key returns the public key of keyID if it may sign a reply about log
// index logIndex at time now (see ArchiveKeys); else an *ArchiveKeyError.
func (k *ArchiveKeys) Key(keyID string, logIndex uint64, now time.Time) (ed25519.PublicKey, error) {
	ak := k.keys[keyID]
	if ak == nil {
		return nil, &ArchiveKeyError{KeyID: keyID, Reason: "not a trusted archive key and not announced by one"}
	}
	if r := ak.retired; r != nil && logIndex >= r.LogSize {
		until, _ := wire.ParseTime(r.OverlapUntil)
		if !now.Before(until) {
			return nil, &ArchiveKeyError{KeyID: keyID, Reason: "retired: rotated to " + r.NewKeyID + ", overlap ended " + r.OverlapUntil}
		}
	}
	return ak.pub, nil
}

// Current returns the id and key of the newest key the chain reaches
// from the first root ("" when there is none).
func (k *ArchiveKeys) Current() (string, ed25519.PublicKey) {
	for id, ak := range k.keys {
		if ak.retired == nil {
			return id, ak.pub
		}
	}
	return "", nil
}

// VerifyReceipt parses a receipt, learns the announcements it carries
// and checks its signature under a key Key accepts at now. It returns the
// receipt and the announcements newly learned.
func (k *ArchiveKeys) VerifyReceipt(b []byte, now time.Time) (*Receipt, [][]byte, error) {
	env, r, err := ParseReceipt(b)
	if err != nil {
		return nil, nil, err
	}
	learned, lerr := k.LearnChain(r.KeyChain)
	if err := k.verifyEnvelope(env, r.LogIndex, now); err != nil {
		if lerr != nil {
			return nil, learned, lerr
		}
		return nil, learned, err
	}
	return r, learned, nil
}

// verifyEnvelope checks that one of env's signatures verifies under a
// key Key accepts for logIndex at now.
func (k *ArchiveKeys) verifyEnvelope(env *dsse.Envelope, logIndex uint64, now time.Time) error {
	return env.VerifyAnyEd25519(func(keyID string) (ed25519.PublicKey, error) {
		return k.Key(keyID, logIndex, now)
	})
}
