package agentd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// ContentKeyUser is what seals to a content key: *agent.Core, and
// *agent.ReceiptJournal for `bundles import-receipts`.
type ContentKeyUser interface {
	UseContentKey(k *agent.ContentKey) bool
	LearnContentKey(ctx context.Context, raw []byte, keys agent.ContentKeyVerifier) (bool, error)
}

// UseContentKey reads encryption.content_key and the newer key the agent
// learned from the archive's receipts since (<data_dir>/content-key.json,
// agent.ContentKeyFile), verifies each announcement against the archive
// key (encryption.archive_key, else sync.archive_key and the archive key
// rotations learned since) and makes the core seal payloads to the one
// of the higher seq. Without encryption.content_key it does nothing. A
// configured announcement that does not verify is an error; a learned
// one that does not is logged and left aside (the next receipt teaches
// the key again).
func UseContentKey(cfg *config.Config, core ContentKeyUser, now time.Time, log *slog.Logger) error {
	e := cfg.Encryption
	if e.ContentKey == "" {
		return nil
	}
	raw, err := fsutil.ReadLimited(e.ContentKey, archivesig.MaxContentKeySize)
	if err != nil {
		return fmt.Errorf("encryption.content_key: %w", err)
	}
	rootPath := e.ArchiveKey
	if rootPath == "" {
		rootPath = cfg.Sync.ArchiveKey
	}
	root, err := ReadArchiveKey(rootPath)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	keys, err := learnedArchiveKeys(cfg, root)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	k, err := agent.ContentKeyFromAnnouncement(raw, keys, now)
	if err != nil {
		return fmt.Errorf("encryption.content_key %s: %w", e.ContentKey, err)
	}
	core.UseContentKey(k)
	learned := filepath.Join(cfg.DataDir, agent.ContentKeyFile)
	raw, err = fsutil.ReadLimited(learned, archivesig.MaxContentKeySize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		k, err = agent.ContentKeyFromAnnouncement(raw, keys, now)
	}
	if err != nil {
		log.Warn("the content key learned from the archive is left aside; the configured one is used", "file", learned, "err", err)
		return nil
	}
	core.UseContentKey(k)
	return nil
}

// learnContentKeys takes the content key announcement a receipt carries
// (the archive's newest key, sent when the bundle held payloads sealed
// to an older one): verified under the archive keys ring trusts,
// journaled and used for new payloads when newer than the key in use.
// A receipt has already been verified and journaled when it comes here;
// an announcement refused is logged and the key in use stays.
func learnContentKeys(ctx context.Context, core ContentKeyUser, ring agent.ContentKeyVerifier, receipts [][]byte, log *slog.Logger) {
	var rs []*archivesig.Receipt
	for _, b := range receipts {
		if _, r, err := archivesig.ParseReceipt(b); err == nil {
			rs = append(rs, r)
		}
	}
	learnParsedContentKeys(ctx, core, ring, rs, log)
}

// learnParsedContentKeys is learnContentKeys of receipts parsed already
// (the sync publisher's).
func learnParsedContentKeys(ctx context.Context, core ContentKeyUser, ring agent.ContentKeyVerifier, receipts []*archivesig.Receipt, log *slog.Logger) {
	var last []byte
	for _, r := range receipts {
		if r.ContentKey != nil {
			last = r.ContentKey
		}
	}
	if last == nil {
		return
	}
	if _, err := core.LearnContentKey(ctx, last, ring); err != nil {
		log.Error("content key announced by the archive not taken; the key in use stays", "err", err)
	}
}

// ImportContentKey is the content key learning of `bundles
// import-receipts`: receipt, verified and journaled, teaches u the
// archive's newer content key it carries, as a receipt over MQTT does.
func ImportContentKey(ctx context.Context, u ContentKeyUser, ring agent.ContentKeyVerifier, receipt []byte, log *slog.Logger) {
	learnContentKeys(ctx, u, ring, [][]byte{receipt}, log)
}
