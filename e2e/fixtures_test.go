package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// loadOrCreateArchiveKey reads the archive's signing key at path, with the
// checks the archive makes on its key file, or creates one (and path.pub)
// when there is none, as the archive does on its first start.
func loadOrCreateArchiveKey(path string) (ed25519.PrivateKey, bool, error) {
	k, err := keystore.LoadFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("archive key: %w", err)
	}
	if k, err = keystore.Generate(); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	if err := keystore.WriteFile(path, k); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// readPublicKey reads a PEM (PKIX) public key file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s: not a PEM PUBLIC KEY", path)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// readEd25519Public reads an archive's key.pub.
func readEd25519Public(path string) (ed25519.PublicKey, error) {
	pub, err := readPublicKey(path)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T, want Ed25519", path, pub)
	}
	return k, nil
}

// readPCRPolicyPublic reads the public half `tpm pcr-key new` wrote.
func readPCRPolicyPublic(path string) (*ecdsa.PublicKey, error) {
	pub, err := readPublicKey(path)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 public key", path)
	}
	return k, nil
}

// writeTemp writes data to a file name in a new temporary directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// marshalTemp writes what marshal returns to a file name in a new
// temporary directory.
func marshalTemp(t *testing.T, name string, marshal func() ([]byte, error)) string {
	t.Helper()
	b, err := marshal()
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, name, b)
}

// The fixtures the archive daemon's package tests share with these tests
// (internal/e2etest): a chain's DEVICE.json, its device enrolled and
// approved in an archive, an empty outbox journal, a journaled refusal
// read back.
var (
	writeTrust     = e2etest.WriteTrust
	enrollChain    = e2etest.EnrollChain
	newOutbox      = e2etest.NewOutbox
	rejectedRecord = e2etest.RejectedRecord
)

// readBundle reads a bundle file.
func readBundle(t *testing.T, path string) *bundle.Bundle {
	t.Helper()
	return readParsed(t, path, func(b []byte) (*bundle.Bundle, error) { return bundle.Read(bytes.NewReader(b), bundle.DefaultLimits) })
}

// verifyJSON is one result of `edgeseal verify --json`.
type verifyJSON struct {
	Bundle   string         `json:"bundle"`
	Verified bool           `json:"verified"`
	Checks   []verify.Check `json:"checks"`
}

// cliEnv runs the binary with env (NAME=VALUE) added and returns its
// combined output and exit code; it is killed after 2 minutes (a command
// that should have refused to start).
func cliEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// readTrust reads a DEVICE.json.
func readTrust(t *testing.T, path string) *trustfile.Trust {
	t.Helper()
	return readParsed(t, path, trustfile.ParseTrust)
}

// readEnrollRequest reads an enrollment request file (agent enroll --out).
func readEnrollRequest(t *testing.T, path string) *archive.EnrollRequest {
	t.Helper()
	return readParsed(t, path, archive.ParseEnrollRequest)
}

// readParsed reads the file at path and parses it with parse.
func readParsed[T any](t *testing.T, path string, parse func([]byte) (T, error)) T {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// archiveKeys are the key, public key and key id of the archive whose
// data directory is dataDir.
func archiveKeys(t *testing.T, dataDir string) (ed25519.PrivateKey, ed25519.PublicKey, string) {
	t.Helper()
	key, _, err := loadOrCreateArchiveKey(filepath.Join(dataDir, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	return key, pub, archive.KeyID(pub)
}

// bundleRecords are the bundle's journal records, raw and parsed.
func bundleRecords(t *testing.T, b *bundle.Bundle) ([][]byte, []*custody.Record) {
	t.Helper()
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	parsed := make([]*custody.Record, len(recs))
	for i, rec := range recs {
		if parsed[i], err = custody.ParseRecord(rec); err != nil {
			t.Fatal(err)
		}
	}
	return recs, parsed
}

// archivedChain writes the bundles of the archive whose data directory is
// archiveData out in log order (files in a temporary directory, for
// `edgeseal verify`) and calls fn with each one, its log index and its
// parsed records (fn nil: only writes them). Log entries that are not
// bundles are skipped and counted.
func archivedChain(t *testing.T, archiveData string, fn func(idx uint64, b *bundle.Bundle, recs []*custody.Record) error) (files []string, skipped int) {
	t.Helper()
	ctx := context.Background()
	objs, err := archive.NewFSStore(filepath.Join(archiveData, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err = archiveLogRecords(t, archiveData, func(idx uint64, rec []byte) error {
		var e archivesig.ReceiptEntry
		if err := json.Unmarshal(rec, &e); err != nil {
			return err
		}
		d, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			skipped++
			return nil // not a bundle entry
		}
		raw, err := objs.Get(ctx, d)
		if err != nil {
			return err
		}
		f := filepath.Join(out, fmt.Sprintf("%04d.bundle.tar", idx))
		if err := os.WriteFile(f, raw, 0o644); err != nil {
			return err
		}
		files = append(files, f)
		if fn == nil {
			return nil
		}
		b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			return err
		}
		raws, err := b.Records()
		if err != nil {
			return err
		}
		recs := make([]*custody.Record, 0, len(raws))
		for _, rr := range raws {
			r, err := custody.ParseRecord(rr)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return fn(idx, b, recs)
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, skipped
}

// archiveLogRecords calls fn with each entry of the log of the stopped
// archive whose data directory is archiveData, in order, through
// archive.ReadLog: on the engine (and name and key) of its config, the
// archive.yaml beside archiveData that writeArchiveConfig writes, and
// the defaults when there is none.
func archiveLogRecords(t *testing.T, archiveData string, fn func(idx uint64, rec []byte) error) error {
	t.Helper()
	cfg := config.Default()
	cfg.KeyFile = filepath.Join(archiveData, "archive.key")
	if p := filepath.Join(filepath.Dir(archiveData), "archive.yaml"); func() bool { _, err := os.Stat(p); return err == nil }() {
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg = c
	}
	key, err := keystore.LoadFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	opts := archive.Options{Dir: archiveData, Name: cfg.Name, Key: key, LogEngine: cfg.ArchiveLog.Engine}
	if cfg.ArchiveLog.MySQLDSNFile != "" {
		b, err := os.ReadFile(cfg.ArchiveLog.MySQLDSNFile)
		if err != nil {
			t.Fatal(err)
		}
		opts.LogDSN = strings.TrimSpace(string(b))
	}
	return archive.ReadLog(t.Context(), opts, fn)
}

// testLogEngine is the archive log's engine of the archives the tests
// configure (writeArchiveConfig): EDGESEAL_TEST_LOG_ENGINE (journal or
// posix), else the default; "" for the default.
func testLogEngine(t *testing.T) string {
	t.Helper()
	switch e := os.Getenv("EDGESEAL_TEST_LOG_ENGINE"); e {
	case "", archive.LogEngineJournal, archive.LogEnginePOSIX:
		return e
	default:
		t.Fatalf("EDGESEAL_TEST_LOG_ENGINE=%s: the e2e tests run on journal or posix", e)
		return ""
	}
}
