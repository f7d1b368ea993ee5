package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// The escrow of a content key: its private key (the 32-byte serialized
// HPKE key) wrapped to an operator's offline recovery key with the
// recovery wrap (docs/recovery.md), the device name standing for
// "<archive name>/content-key-<seq>". It is written beside the key as
// <seq>.escrow.json; the recovery private key restores it
// (RestoreContentKey) on a new archive.

// Archive log entry types of the content key operations besides the
// announcement (LogContentKeyEntry): an escrow made and a key restored
// from its escrow.
const (
	LogContentKeyEscrowEntryType  = "content.key.escrow"
	LogContentKeyRestoreEntryType = "content.key.restore"
)

// LogContentKeyOpEntry is the archive log entry of a content key
// escrow or restore. Its JSON is canonical (members in this order).
type LogContentKeyOpEntry struct {
	KeyID         string `json:"keyId"`         // the content key's id
	RecoveryKeyID string `json:"recoveryKeyId"` // the offline recovery key's id
	Seq           uint64 `json:"seq"`           // the content key's seq
	Time          string `json:"time"`
	Type          string `json:"type"` // LogContentKeyEscrowEntryType or LogContentKeyRestoreEntryType
	V             int    `json:"v"`    // 1
}

// logContentKeyOp appends a content key operation to the archive log
// and signs a checkpoint covering it.
func (a *Archive) logContentKeyOp(ctx context.Context, typ string, seq uint64, keyID, recoveryKeyID string) error {
	rec, err := json.Marshal(LogContentKeyOpEntry{KeyID: keyID, RecoveryKeyID: recoveryKeyID, Seq: seq, Time: wire.FormatTime(a.now()), Type: typ, V: 1})
	if err != nil {
		return err
	}
	lgd, err := a.log.append(ctx, rec)
	if err != nil {
		return fmt.Errorf("archive: %s: log: %w", typ, err)
	}
	if _, err := a.log.checkpoint(ctx, lgd[0].seq+1); err != nil {
		return err
	}
	a.lg.Warn("archive content key operation logged", "op", typ, "seq", seq, "keyId", keyID, "recoveryKeyId", recoveryKeyID)
	return nil
}

// escrowName is the wrap's device for content key seq.
func escrowName(origin string, seq uint64) string {
	return origin + "/content-key-" + strconv.FormatUint(seq, 10)
}

// EscrowContentKey wraps content key seq to the recovery public key rec,
// writes <data_dir>/content-keys/<seq>.escrow.json (replacing one made
// before) and logs it (a content.key.escrow entry). It returns the
// file's path.
func (a *Archive) EscrowContentKey(ctx context.Context, seq uint64, rec *recovery.PublicKey) (string, error) {
	ck, err := a.contentKeyState()
	if err != nil {
		return "", err
	}
	ck.mu.RLock()
	k := ck.bySeq[seq]
	ck.mu.RUnlock()
	if k == nil {
		return "", fmt.Errorf("archive: escrow content key %d: no such key", seq)
	}
	d := filepath.Join(a.opts.Dir, ContentKeyDir)
	raw, err := k.Bytes()
	if err != nil {
		return "", err
	}
	w, err := recovery.Seal(rec, escrowName(a.opts.Name, seq), raw)
	if err != nil {
		return "", fmt.Errorf("archive: escrow content key %d: %w", seq, err)
	}
	out, err := w.Marshal()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, strconv.FormatUint(seq, 10)+".escrow.json")
	if err := fsutil.WriteFileAtomic(p, out, 0o644); err != nil {
		return "", fmt.Errorf("archive: escrow content key %d: %w", seq, err)
	}
	if err := a.logContentKeyOp(ctx, LogContentKeyEscrowEntryType, seq, k.ID, rec.ID); err != nil {
		return "", err
	}
	return p, nil
}

// RestoreContentKey restores content key seq from its escrow into this
// archive (RestoreContentKeyFile into its data directory), logs it (a
// content.key.restore entry) and opens payloads with it from now on. It
// returns the key's id.
func (a *Archive) RestoreContentKey(ctx context.Context, seq uint64, escrow []byte, rec *recovery.PrivateKey) (string, error) {
	ck, err := a.contentKeyState()
	if err != nil {
		return "", err
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	id, k, err := restoreContentKey(a.opts.Dir, a.opts.Name, seq, escrow, rec, a.opts.ContentKeyWrap)
	if err != nil {
		return "", err
	}
	if err := a.logContentKeyOp(ctx, LogContentKeyRestoreEntryType, seq, id, rec.ID); err != nil {
		return "", err
	}
	ck.keys[id], ck.bySeq[seq] = k, k
	ck.seq = max(ck.seq, seq)
	return id, nil
}

// RestoreContentKeyFile opens an escrow (the bytes of a
// <seq>.escrow.json of the archive named origin) with the recovery
// private key and writes the content key as <dir>/content-keys/<seq>.key
// (0600; an existing file is refused), without logging it: the
// archive's RestoreContentKey does both. It returns the key's id.
func RestoreContentKeyFile(dir, origin string, seq uint64, escrow []byte, rec *recovery.PrivateKey) (string, error) {
	id, _, err := restoreContentKey(dir, origin, seq, escrow, rec, nil)
	return id, err
}

func restoreContentKey(dir, origin string, seq uint64, escrow []byte, rec *recovery.PrivateKey, wrap ContentKeyWrapper) (string, *payloadcipher.PrivateKey, error) {
	w, err := recovery.Parse(escrow)
	if err != nil {
		return "", nil, err
	}
	if want := escrowName(origin, seq); w.Device != want {
		return "", nil, fmt.Errorf("archive: the escrow is of %q, not %q", w.Device, want)
	}
	raw, err := w.Open(rec)
	if err != nil {
		return "", nil, err
	}
	k, err := payloadcipher.NewPrivateKey(raw)
	if err != nil {
		return "", nil, err
	}
	d := filepath.Join(dir, ContentKeyDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", nil, err
	}
	if err := writeContentKey(d, origin, seq, k, wrap); err != nil {
		return "", nil, fmt.Errorf("archive: restore content key %d: %w", seq, err)
	}
	return k.ID, k, nil
}
