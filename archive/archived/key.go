package archived

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// OpenKey returns the archive's signer as the config says: the token key
// of key (a pkcs11: URI) with the pkcs11 section, or key_file's key,
// created on first start (LoadOrCreateKey; created reports that). close
// releases the token session.
func OpenKey(cfg *config.Config) (signer crypto.Signer, close func(), created bool, err error) {
	if !cfg.KeyInToken() {
		k, created, err := LoadOrCreateKey(cfg.KeyFile)
		return k, func() {}, created, err
	}
	k, err := OpenTokenKey(cfg.Key, cfg.PKCS11)
	if err != nil {
		return nil, nil, false, err
	}
	return k, func() { k.Close() }, false, nil
}

// OpenKeyNoCreate is OpenKey for commands that must not create a key:
// a missing key_file is an error.
func OpenKeyNoCreate(cfg *config.Config) (crypto.Signer, func(), error) {
	if !cfg.KeyInToken() {
		k, err := keystore.LoadFile(cfg.KeyFile)
		return k, func() {}, err
	}
	k, closeKey, _, err := OpenKey(cfg)
	return k, closeKey, err
}

// OpenTokenKey opens the token key uri names, logging in with the PIN p
// names (a file or an environment variable).
func OpenTokenKey(uri string, p config.PKCS11) (*keystore.PKCS11Key, error) {
	tc, err := tokenConfig(uri, p)
	if err != nil {
		return nil, err
	}
	return keystore.OpenPKCS11(tc)
}

// tokenConfig is the token session for the key uri names: p's module and
// the PIN p names (a file or an environment variable).
func tokenConfig(uri string, p config.PKCS11) (keystore.PKCS11Config, error) {
	u, err := keystore.ParseURI(uri)
	if err != nil {
		return keystore.PKCS11Config{}, err
	}
	pin, err := keystore.ReadPIN(p.PINFile, p.PINEnv, os.Getenv)
	if err != nil {
		return keystore.PKCS11Config{}, err
	}
	return keystore.PKCS11Config{Module: p.Module, URI: u, PIN: pin}, nil
}

// LoadOrCreateKey reads the archive's Ed25519 key (PKCS#8 PEM), or
// creates it (0600, written to a temp file, fsynced and linked into
// place so a concurrent start never replaces it) with its public key
// beside it as FILE.pub.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, bool, error) {
	if err := keystore.CheckFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := keystore.ParseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("archive key %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	tmp := path + ".tmp-" + fmt.Sprint(time.Now().UnixNano())
	if err := fsutil.WriteFileAtomic(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another start won: use its key
			return LoadOrCreateKey(path)
		}
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, false, err
	}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, false, err
	}
	if err := fsutil.WriteFileAtomic(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// OpenContentKeyWrap opens the token key content_key_wrap names (with
// the pkcs11 section's module and PIN), which wraps the content private
// keys at rest; without content_key_wrap it returns nil. close releases
// the token session after the archive is closed.
func OpenContentKeyWrap(cfg *config.Config) (wrap archive.ContentKeyWrapper, close func(), err error) {
	if !cfg.ContentKeysWrapped() {
		return nil, func() {}, nil
	}
	tc, err := tokenConfig(cfg.ContentKeyWrap, cfg.PKCS11)
	if err != nil {
		return nil, nil, err
	}
	k, err := keystore.OpenPKCS11WrapKey(tc)
	if err != nil {
		return nil, nil, fmt.Errorf("content_key_wrap: %w", err)
	}
	return k, func() { k.Close() }, nil
}

// GenerateContentKeyWrap creates the AES-256 key content_key_wrap names
// in the token (it never leaves it; a label in use is refused).
func GenerateContentKeyWrap(cfg *config.Config) error {
	if !cfg.ContentKeysWrapped() {
		return errors.New("content_key_wrap is not configured")
	}
	tc, err := tokenConfig(cfg.ContentKeyWrap, cfg.PKCS11)
	if err != nil {
		return err
	}
	k, err := keystore.GeneratePKCS11WrapKey(tc)
	if err != nil {
		return fmt.Errorf("content_key_wrap: %w", err)
	}
	return k.Close()
}
