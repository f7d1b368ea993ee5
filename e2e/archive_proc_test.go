package e2e

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// archiveProc is a running `edgeseal archive --config FILE`.
type archiveProc struct {
	*proc
	cfg     string            // the config file
	dataDir string            // its data_dir
	keyFile string            // the archive's key (dataDir/archive.key)
	pub     ed25519.PublicKey // the archive's public key
	broker  string            // the broker URL the daemon logged when ready
	metrics string            // HOST:PORT of /metrics, when configured
}

// writeArchiveConfig writes dir/archive.yaml: data in dir/data, JSON logs,
// /metrics on a free loopback port, the broker (the embedded one on a
// free loopback port when broker is "", else broker with client id), and
// the log engine EDGESEAL_TEST_LOG_ENGINE names (testLogEngine).
func writeArchiveConfig(t *testing.T, dir, broker, clientID string) string {
	t.Helper()
	mqtt := "mqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"
	if broker != "" {
		mqtt = fmt.Sprintf("mqtt:\n  broker: %s\n  client_id: %s\n", broker, clientID)
	}
	if e := testLogEngine(t); e != "" {
		mqtt += "archive_log:\n  engine: " + e + "\n"
	}
	cfg := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\n"+mqtt+"log:\n  format: json\nmetrics:\n  listen: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// archiveKeyOf reads (or creates, before the first start) the key of the
// archive whose config is in dir.
func archiveKeyOf(t *testing.T, dir string) (string, ed25519.PrivateKey) {
	t.Helper()
	keyFile := filepath.Join(dir, "data", "archive.key")
	key, _, err := loadOrCreateArchiveKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, key
}

// startArchiveProc starts the archive binary on cfgFile (written by
// writeArchiveConfig) and waits for its "archive ready" log line and its
// /metrics address.
func startArchiveProc(t *testing.T, cfgFile string, env ...string) *archiveProc {
	t.Helper()
	dataDir := filepath.Join(filepath.Dir(cfgFile), "data")
	p := &archiveProc{proc: startProc(t, "archive", env, "archive", "--config", cfgFile),
		cfg: cfgFile, dataDir: dataDir, keyFile: filepath.Join(dataDir, "archive.key")}
	p.waitFor("ready", func() bool {
		p.broker = p.logField("archive ready", "broker")
		p.metrics = p.logField("metrics: serving /metrics", "addr")
		return p.broker != "" && p.metrics != ""
	})
	_, p.pub, _ = archiveKeys(t, dataDir) // the daemon's, created on its first start
	return p
}

// startEmbeddedArchive starts an archive with its embedded broker in a
// new directory.
func startEmbeddedArchive(t *testing.T) *archiveProc {
	t.Helper()
	return startArchiveProc(t, writeArchiveConfig(t, t.TempDir(), "", ""))
}

// enrollDevices enrolls the DEVICE.json files with the archive CLI and
// approves the first as e2e-site/dev-1 (no credential activation).
func enrollDevices(t *testing.T, cfg string, devices ...string) {
	t.Helper()
	for _, d := range devices {
		if out, code := bundlesCLI(t, "archive", "enroll-file", d, "--config", cfg); code != 0 {
			t.Fatalf("archive enroll-file: exit %d\n%s", code, out)
		}
	}
	if len(devices) > 0 {
		if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyIDOf(t, devices[0]), "--no-activation", "--by", "test", "--config", cfg); code != 0 {
			t.Fatalf("archive devices approve: exit %d\n%s", code, out)
		}
	}
}

// stop sends SIGTERM and wants exit status 0.
func (p *archiveProc) stop(t *testing.T) {
	t.Helper()
	p.terminate()
}

// logs is what the daemon logged so far.
func (p *archiveProc) logs() string { return p.stderr.String() }

// archiveStats are the archive's counters as its /metrics shows them.
type archiveStats struct {
	Accepted, Duplicates, Refused, LogSize uint64
}

// stats scrapes the archive's /metrics.
func (p *archiveProc) stats(t *testing.T) archiveStats {
	t.Helper()
	m := getMetrics(t, p.metrics)
	get := func(name string, labels ...string) uint64 { return uint64(m.get(t, name, labels...)) }
	return archiveStats{
		Accepted:   get("edgeseal_archive_verifications_total", "result", "accepted"),
		Duplicates: get("edgeseal_archive_verifications_total", "result", "duplicate"),
		Refused:    get("edgeseal_archive_verifications_total", "result", "refused"),
		LogSize:    get("edgeseal_archive_log_entries"),
	}
}

// appendFile appends text to the file at path (an agent's config).
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
