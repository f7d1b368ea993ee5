package archived

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/tlog"
)

// withRetention sets the retention classes, the operator keys and the
// archive log's engine (archive_log) of the config in opts.
func withRetention(cfg *config.Config, opts archive.Options) (archive.Options, error) {
	keys, err := OperatorKeys(cfg)
	if err != nil {
		return opts, err
	}
	opts.Classes, opts.DefaultClass, opts.OperatorKeys = cfg.Classes(), cfg.RetentionDefaultClass, keys
	opts.LogEngine = cfg.ArchiveLog.Engine
	if cfg.ArchiveLog.MySQLDSNFile != "" {
		if opts.LogDSN, err = readSecretFile(cfg.ArchiveLog.MySQLDSNFile); err != nil {
			return opts, fmt.Errorf("archive_log.mysql_dsn_file: %w", err)
		}
	}
	if opts.LogEngine != archive.LogEngineJournal && opts.Logger != nil {
		tlog.RouteLibraryLogs(opts.Logger) // Tessera's own lines
	}
	return opts, nil
}

// OperatorKeys reads the operator public keys of operator_keys.
func OperatorKeys(cfg *config.Config) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, path := range cfg.OperatorKeys {
		k, err := ReadOperatorPublic(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ReadOperatorPublic reads an Ed25519 public key (PKIX PEM, the .pub
// file `edgeseal archive operator keygen` writes).
func ReadOperatorPublic(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("operator key: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("operator key %s: not a PEM PUBLIC KEY", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("operator key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("operator key %s: %T, want Ed25519", path, k)
	}
	return pub, nil
}
