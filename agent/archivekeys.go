package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	gosync "sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// ArchiveKeysFile is the file in the agent's data directory that keeps
// the archive key announcements the agent learned (archivesig.KeyChainFile).
const ArchiveKeysFile = "archive-keys.json"

// ArchiveKeyring is the agent's trust in the archive's keys: the key it
// is configured with (sync.archive_key) and the keys announced since
// (archivesig.ArchiveKeys). An announcement a reply carries is learned when a
// trusted key signed it; it is journaled as an `archive.key` record (body:
// the announcement) and kept in the chain file before any reply signed by
// the new key is accepted. It implements sync.ArchiveKeyring and is safe
// for concurrent use.
type ArchiveKeyring struct {
	c      *Core
	path   string
	origin string
	root   ed25519.PublicKey
	log    *slog.Logger
	now    func() time.Time

	mu    gosync.Mutex
	keys  *archivesig.ArchiveKeys
	chain [][]byte // durable announcements
}

// ArchiveKeyring opens the keyring of the archive whose log origin is
// origin, configured with root, keeping what it learns in path (a chain
// file; missing: nothing learned yet). Announcements in the file that no
// longer link to root (the configured key changed) are dropped.
func (c *Core) ArchiveKeyring(path, origin string, root ed25519.PublicKey) (*ArchiveKeyring, error) {
	k := &ArchiveKeyring{c: c, path: path, origin: origin, root: root, log: c.log, now: c.opts.Now}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("agent: archive keys: %w", err)
	default:
		f, err := archivesig.ParseKeyChainFile(b)
		if err != nil {
			return nil, fmt.Errorf("agent: archive keys %s: %w", path, err)
		}
		if f.Origin != origin {
			return nil, fmt.Errorf("agent: archive keys %s: for archive %q, want %q", path, f.Origin, origin)
		}
		k.chain = f.Announcements
	}
	k.reset()
	return k, nil
}

// reset rebuilds the trust from the root and the durable chain.
func (k *ArchiveKeyring) reset() {
	k.keys = archivesig.NewArchiveKeys(k.origin, k.root)
	kept := k.chain[:0:0]
	for _, raw := range k.chain {
		if ok, err := k.keys.Learn(raw); err != nil {
			k.log.Warn("agent: a kept archive key announcement does not link to the configured key; dropped", "err", err)
		} else if ok {
			kept = append(kept, raw)
		}
	}
	k.chain = kept
}

// Chain returns the announcements learned, oldest first.
func (k *ArchiveKeyring) Chain() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]byte(nil), k.chain...)
}

// ReplyKey implements sync.ArchiveKeyring: it learns the announcements
// of chain (journaling and keeping each new one; one refused is logged
// and ignored) and returns the key of keyID if it may sign a reply about
// logIndex now.
func (k *ArchiveKeyring) ReplyKey(ctx context.Context, keyID string, logIndex uint64, chain [][]byte) (ed25519.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	learned, lerr := k.keys.LearnChain(chain)
	if lerr != nil {
		k.log.Warn("agent: refused an archive key announcement", "err", lerr)
	}
	if len(learned) > 0 {
		if err := k.persist(ctx, learned); err != nil {
			k.reset() // not durable: not trusted
			return nil, err
		}
	}
	pub, err := k.keys.Key(keyID, logIndex, k.now())
	if err != nil && lerr != nil {
		return nil, fmt.Errorf("%w (and the reply's key chain was refused: %w)", err, lerr)
	}
	return pub, err
}

// persist journals each learned announcement as an archive.key record
// (idempotent by its new key) and then rewrites the chain file.
func (k *ArchiveKeyring) persist(ctx context.Context, learned [][]byte) error {
	for _, raw := range learned {
		_, an, err := archivesig.ParseArchiveKey(raw)
		if err != nil {
			return err
		}
		a, err := k.c.j.Append(ctx, store.Entry{
			Build: func(seq uint64, prev [32]byte) ([]byte, error) {
				r := custody.Record{Seq: seq, Type: custody.TypeArchiveKey, Time: k.c.stamp(), Device: k.c.device, Prev: prev,
					Actor: custody.Actor{Kind: "archive", ID: an.OldKeyID, Via: "sync"}, Body: raw}
				return r.Marshal()
			},
			Key: []byte("archive-key/" + an.NewKeyID),
		})
		if _, dup := errors.AsType[*store.DuplicateError](err); err != nil && !dup {
			return fmt.Errorf("agent: journal archive key %s: %w", an.NewKeyID, err)
		}
		if err == nil {
			k.c.cache.add(a, nil)
			k.c.maybeWake(a.Size)
			k.log.Warn("learned a new archive key", "old", an.OldKeyID, "new", an.NewKeyID, "overlapUntil", an.OverlapUntil)
		}
	}
	chain := append(k.chain[:len(k.chain):len(k.chain)], learned...)
	b, err := (&archivesig.KeyChainFile{Origin: k.origin, Announcements: chain}).Marshal()
	if err != nil {
		return fmt.Errorf("agent: archive keys: %w", err)
	}
	if err := fsutil.WriteFileAtomic(k.path, b, 0o644); err != nil {
		return fmt.Errorf("agent: archive keys: %w", err)
	}
	k.chain = chain
	return nil
}

// ArchiveKeyring is Core.ArchiveKeyring for a stopped agent's journal
// (`edgeseal bundles import-receipts`): what it learns is journaled and
// kept the same way.
func (r *ReceiptJournal) ArchiveKeyring(path, origin string, root ed25519.PublicKey) (*ArchiveKeyring, error) {
	return r.c.ArchiveKeyring(path, origin, root)
}

// VerifyContentKey verifies a content key announcement under the archive
// keys the ring trusts now (ContentKeyVerifier).
func (k *ArchiveKeyring) VerifyContentKey(raw []byte, now time.Time) (*archivesig.ContentKeyAnnouncement, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys.VerifyContentKey(raw, now)
}
