package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// ContentKeyFile is the file in the agent's data directory that keeps
// the newest content key announcement the agent learned from the
// archive's receipts (the announcement's bytes); the daemon reads it
// beside encryption.content_key at start and on reload, and seals to
// the one of the higher seq.
const ContentKeyFile = "content-key.json"

// ContentKeyVerifier verifies a content key announcement under the
// archive keys the agent trusts: *archivesig.ArchiveKeys, or the
// agent's ArchiveKeyring (the keys sync follows).
type ContentKeyVerifier interface {
	VerifyContentKey(raw []byte, now time.Time) (*archivesig.ContentKeyAnnouncement, error)
}

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
func ContentKeyFromAnnouncement(raw []byte, keys ContentKeyVerifier, now time.Time) (*ContentKey, error) {
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

// LearnContentKey takes the content key announcement raw that came with
// an archive receipt (archivesig.Receipt.ContentKey). When it verifies
// under keys and is newer (a higher seq) than the key in use, it is
// journaled as a content.key record (idempotent by the key id), kept in
// ContentKeyFile and used for every payload sealed from then on;
// payloads journaled before keep their key, which the archive keeps. A
// core that seals nothing (no content key: encryption is not
// configured) takes none. It reports whether it took the key; an error
// leaves the key in use as it was.
func (c *Core) LearnContentKey(ctx context.Context, raw []byte, keys ContentKeyVerifier) (bool, error) {
	c.contentMu.Lock()
	defer c.contentMu.Unlock()
	cur := c.content.Load()
	if cur == nil {
		return false, nil
	}
	env, _, err := archivesig.ParseContentKey(raw)
	if err != nil {
		return false, fmt.Errorf("agent: content key: %w", err)
	}
	k, err := ContentKeyFromAnnouncement(raw, keys, c.opts.Now())
	if err != nil {
		return false, err
	}
	if k.Seq <= cur.Seq {
		return false, nil
	}
	a, err := c.j.Append(ctx, store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			r := custody.Record{Seq: seq, Type: custody.TypeContentKey, Time: c.stamp(), Device: c.device, Prev: prev,
				Actor: custody.Actor{Kind: "archive", ID: env.Signatures[0].KeyID, Via: "sync"}, Body: raw}
			return r.Marshal()
		},
		Key: []byte("content-key/" + k.Key.ID),
	})
	if _, dup := errors.AsType[*store.DuplicateError](err); err != nil && !dup {
		return false, fmt.Errorf("agent: journal content key %s: %w", k.Key.ID, err)
	}
	if err == nil {
		c.cache.add(a, nil)
		c.maybeWake(a.Size)
	}
	if c.opts.StateDir != "" {
		if err := fsutil.WriteFileAtomic(filepath.Join(c.opts.StateDir, ContentKeyFile), raw, 0o644); err != nil {
			return false, fmt.Errorf("agent: content key: %w", err)
		}
	}
	c.log.Warn("learned a new content key of the archive", "keyId", k.Key.ID, "seq", k.Seq, "previous", cur.Key.ID)
	return c.UseContentKey(k), nil
}

// cipherDigest is the SHA-256 of the ciphertext file ct that
// custody.EncryptPayload just named in body (so it is not hashed twice).
func cipherDigest(body *custody.ExportBody, ct []byte) [32]byte {
	if body.PayloadCipher != nil {
		if d, err := wire.ParseHash(body.PayloadCipher.Digest); err == nil {
			return d
		}
	}
	return sha256.Sum256(ct)
}

// windowPrefix is the store.Payload.Prefix of the ciphertext file ct of
// body: the window's encapsulated key (payloadcipher.EncSize bytes), the
// same for every payload of a version 2 window, journaled once; 0 (the
// file journaled whole) for version 1, whose encapsulated key is the
// payload's own.
func windowPrefix(body *custody.ExportBody, ct []byte) int {
	if c := body.PayloadCipher; c == nil || c.V < payloadcipher.V2 || len(ct) < payloadcipher.EncSize {
		return 0
	}
	return payloadcipher.EncSize
}
