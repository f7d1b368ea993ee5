package archive

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// The escrow of a content key: its private key (the 32-byte serialized
// HPKE key) wrapped to an operator's offline recovery key with the
// recovery wrap (docs/recovery.md), the device name standing for
// "<archive name>/content-key-<seq>". It is written beside the key as
// <seq>.escrow.json; the recovery private key restores it
// (RestoreContentKey) on a new archive.

// escrowName is the wrap's device for content key seq.
func escrowName(origin string, seq uint64) string {
	return origin + "/content-key-" + strconv.FormatUint(seq, 10)
}

// EscrowContentKey wraps content key seq to the recovery public key rec
// and writes <data_dir>/content-keys/<seq>.escrow.json (replacing one
// made before). It returns the file's path.
func (a *Archive) EscrowContentKey(seq uint64, rec *recovery.PublicKey) (string, error) {
	d := filepath.Join(a.opts.Dir, ContentKeyDir)
	b, err := fsutil.ReadLimited(filepath.Join(d, strconv.FormatUint(seq, 10)+".key"), 8<<10)
	if err != nil {
		return "", fmt.Errorf("archive: escrow content key %d: %w", seq, err)
	}
	k, err := payloadcipher.ParsePrivateKey(b)
	if err != nil {
		return "", err
	}
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
	return p, nil
}

// RestoreContentKey opens an escrow (the bytes of a <seq>.escrow.json of
// the archive named origin) with the recovery private key and writes
// the content key as <dir>/content-keys/<seq>.key (0600; an existing
// file is refused). It returns the key's id.
func RestoreContentKey(dir, origin string, seq uint64, escrow []byte, rec *recovery.PrivateKey) (string, error) {
	w, err := recovery.Parse(escrow)
	if err != nil {
		return "", err
	}
	if want := escrowName(origin, seq); w.Device != want {
		return "", fmt.Errorf("archive: the escrow is of %q, not %q", w.Device, want)
	}
	raw, err := w.Open(rec)
	if err != nil {
		return "", err
	}
	k, err := payloadcipher.NewPrivateKey(raw)
	if err != nil {
		return "", err
	}
	pemb, err := k.MarshalPEM()
	if err != nil {
		return "", err
	}
	d := filepath.Join(dir, ContentKeyDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(d, strconv.FormatUint(seq, 10)+".key")
	if err := fsutil.WriteNewFile(p, 0o600, func(w io.Writer) error { _, err := w.Write(pemb); return err }); err != nil {
		return "", fmt.Errorf("archive: restore content key %d: %w", seq, err)
	}
	return k.ID, nil
}
