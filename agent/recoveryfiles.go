package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// ReadRecoveryFile reads a recovery key or wrap file, at most 64 KiB of it.
func ReadRecoveryFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// WriteRecoveryKey makes a recovery key pair and writes it to path and
// path.pub, refusing to replace either.
func WriteRecoveryKey(path string) (*recovery.PrivateKey, error) {
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("tpm recovery-keygen: %s exists: not overwriting a recovery key", p)
		}
	}
	k, err := recovery.GenerateKey()
	if err != nil {
		return nil, err
	}
	priv, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path, priv, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path+".pub", k.Public().MarshalPEM(), 0o644); err != nil {
		return nil, err
	}
	return k, nil
}

// ReadRecoveryPublic reads a recovery public key file.
func ReadRecoveryPublic(path string) (*recovery.PublicKey, error) {
	b, err := ReadRecoveryFile(path)
	if err != nil {
		return nil, err
	}
	k, err := recovery.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WrapDataKey wraps the TPM's data key for device to pub and stores the wrap
// in the state dir (the previous one, if any, kept as .old). A data key
// the TPM has just created is wrapped as created: keys bound to a
// PCR-policy key unseal only once an authorization is installed.
func WrapDataKey(ctx context.Context, t *tpm.TPM, state, device string, pub *recovery.PublicKey) error {
	key := t.CreatedDataKey()
	if key == nil {
		var err error
		if key, err = t.DataKey(ctx); err != nil {
			return fmt.Errorf("recovery wrap: %w", err)
		}
	}
	return WriteRecoveryWrap(state, device, pub, key)
}

// WriteRecoveryWrap wraps key (the data key) for device to pub and
// stores the wrap in the state dir, the previous one, if any, kept as .old.
func WriteRecoveryWrap(state, device string, pub *recovery.PublicKey, key []byte) error {
	w, err := recovery.Seal(pub, device, key)
	if err != nil {
		return err
	}
	b, err := w.Marshal()
	if err != nil {
		return err
	}
	p := filepath.Join(state, recovery.FileName)
	if old, err := os.ReadFile(p); err == nil && !bytes.Equal(old, b) {
		if err := fsutil.WriteFileAtomic(p+".old", old, 0o600); err != nil {
			return err
		}
	}
	return fsutil.WriteFileAtomic(p, b, 0o600)
}
