package archived

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// TokenKey is an archive key created in a token by ImportTokenKey.
type TokenKey struct {
	URI   keystore.URI
	KeyID string // archivesig.ArchiveKeyID of its public key
}

// ImportTokenKey creates the archive key in the token uri names (p gives
// the module and the PIN): key_file's key (same key id, nothing to rotate)
// or, with generate, a new one (to rotate to with RotateKey).
func ImportTokenKey(cfg *config.Config, p config.PKCS11, uri string, generate bool) (*TokenKey, error) {
	tc, err := tokenConfig(uri, p)
	if err != nil {
		return nil, err
	}
	var k *keystore.PKCS11Key
	if generate {
		k, err = keystore.GeneratePKCS11(tc)
	} else {
		var fk ed25519.PrivateKey
		if fk, err = keystore.LoadFile(cfg.KeyFile); err != nil {
			return nil, err
		}
		k, err = keystore.ImportPKCS11(tc, fk)
	}
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return &TokenKey{URI: tc.URI, KeyID: archivesig.ArchiveKeyID(k.Public().(ed25519.PublicKey))}, nil
}

// ReadKeyChain reads the archive's key announcements (archive.KeyChainFile
// under data_dir), oldest first; none before the first rotation.
func ReadKeyChain(cfg *config.Config) ([][]byte, error) {
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, archive.KeyChainFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := archivesig.ParseKeyChainFile(b)
	if err != nil {
		return nil, err
	}
	return f.Announcements, nil
}
