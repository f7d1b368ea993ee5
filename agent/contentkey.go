package agent

import (
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// ContentKey is the archive's content key the core seals payloads to
// (bundle/payloadcipher), taken from a content key announcement signed
// by an archive key the agent trusts.
type ContentKey struct {
	Key  *payloadcipher.PublicKey
	Seq  uint64 // the announcement's seq: a newer key has a higher one
	Time string // when the archive announced it
}

// ContentKeyFromAnnouncement verifies a content key announcement (raw)
// against the archive keys the agent trusts and returns the key.
func ContentKeyFromAnnouncement(raw []byte, keys *archivesig.ArchiveKeys, now time.Time) (*ContentKey, error) {
	a, err := keys.VerifyContentKey(raw, now)
	if err != nil {
		return nil, fmt.Errorf("agent: content key: %w", err)
	}
	k, err := a.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("agent: content key: %w", err)
	}
	return &ContentKey{Key: k, Seq: a.Seq, Time: a.Time}, nil
}

// UseContentKey makes k the key new exports are sealed to, unless the
// core has a newer one (a higher Seq); it reports whether k is in use.
// Exports journaled before keep the key they were sealed to.
func (c *Core) UseContentKey(k *ContentKey) bool {
	for {
		old := c.content.Load()
		if old != nil && old.Seq >= k.Seq {
			return old.Key.ID == k.Key.ID
		}
		if c.content.CompareAndSwap(old, k) {
			c.log.Info("agent: payloads are sealed to the archive's content key", "keyId", k.Key.ID, "seq", k.Seq)
			return true
		}
	}
}

// ContentKey returns the content key in use, nil when payloads are not
// encrypted.
func (c *Core) ContentKey() *ContentKey { return c.content.Load() }
