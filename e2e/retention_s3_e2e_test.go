package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestArchiveRetentionS3 drives the binary against a real versitygw with
// a short retention class: the objects carry the class's Object Lock
// retain-until, a purge before it or under legal hold is refused, after
// it the payloads are purged with a signed statement in the archive log.
func TestArchiveRetentionS3(t *testing.T) {
	g := s3test.Start(t)
	dir := t.TempDir()
	opKey := newOperatorKey(t, dir, "alice.key")
	cfgFile, bucket := writeS3ArchiveConfig(t, g, dir, `retention_classes:
  - {name: 7y, keep: 4s}
  - {name: permanent, keep: 876000h}
retention_default_class: permanent
operator_keys: [alice.key.pub]
`)
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	media, sums := writeMedia(t, c)
	var digests []string
	for _, d := range sums {
		digests = append(digests, wire.FormatHash(d))
	}
	run := func(wantOK bool, want string, args ...string) string {
		t.Helper()
		out, code := runCmd(t, append(args, "--config", cfgFile)...)
		if (code == 0) != wantOK || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d, want success %v and %q\n%s", args, code, wantOK, want, out)
		}
		return out
	}
	run(true, "", "archive", "enroll-file", writeTrust(t, c))
	run(true, "device.approve site1/dev1 signed by alice", "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--operator-key", opKey, "--by", "alice")
	start := time.Now()
	run(true, "2 accepted, 0 refused", "archive", "import", media)

	o := g.Options(bucket)
	o.Prefix = "bundles/"
	s, err := s3store.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	until, held, err := s.Retained(t.Context(), sums[0])
	if err != nil || held || until.Before(start) || until.After(time.Now().Add(10*time.Second)) {
		t.Fatalf("object retain-until %s (held %v, %v): want the 7y class's 4s, not the store's 48h", until, held, err)
	}

	run(false, "retained until", "archive", "purge", "--key", opKey, "--by", "alice", "--bundle", digests[0])
	run(true, "hold.set case C-1 on 1 bundle(s)", "archive", "hold", "set", "--bundle", digests[1], "--case", "C-1", "--key", opKey, "--by", "alice")
	if _, held, err := s.Retained(t.Context(), sums[1]); err != nil || !held {
		t.Fatalf("legal hold in the bucket: %v %v", held, err)
	}
	for time.Now().Before(until.Add(time.Second)) {
		time.Sleep(200 * time.Millisecond)
	}
	run(false, "legal hold (case C-1)", "archive", "purge", "--key", opKey, "--by", "alice", "--bundle", digests[1])
	run(true, "would purge "+digests[0], "archive", "purge", "--key", opKey, "--by", "alice", "--dry-run")
	stmt := filepath.Join(dir, "purge.json")
	out := run(true, "purged "+digests[0], "archive", "purge", "--key", opKey, "--by", "alice", "--reason", "class 7y over", "--statement-out", stmt)
	if !strings.Contains(out, "kept "+digests[1]+": under legal hold") || !strings.Contains(out, "retention.purge statement at archive log index") {
		t.Fatalf("purge output:\n%s", out)
	}
	if ok, err := s.Has(t.Context(), sums[0]); err != nil || ok {
		t.Fatalf("purged bundle still in the bucket: %v %v", ok, err)
	}
	if ok, err := s.Has(t.Context(), sums[1]); err != nil || !ok {
		t.Fatalf("held bundle gone: %v %v", ok, err)
	}
	// An auditor verifies the skeleton the bucket holds now with the
	// signed purge statement: the payloads show as purged; without the
	// statement it is not verified.
	ps, err := archive.ParseOperatorStatement([]byte(fileText(t, stmt)))
	if err != nil || len(ps.Purged) != 1 {
		t.Fatalf("purge statement: %v", err)
	}
	sd, _ := wire.ParseHash(ps.Purged[0].Skeleton)
	skel, err := s.Get(t.Context(), sd)
	if err != nil {
		t.Fatal(err)
	}
	skelFile := filepath.Join(dir, "skeleton.bundle.tar")
	if err := os.WriteFile(skelFile, skel, 0o644); err != nil {
		t.Fatal(err)
	}
	trust := writeTrust(t, c)
	if out, code := runCmd(t, "verify", "--trust", trust, "--purged", stmt, skelFile); code != 0 || !strings.Contains(out, "purged at the archive") {
		t.Fatalf("verify skeleton with its purge: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", "--trust", trust, skelFile); code != 1 {
		t.Fatalf("verify skeleton without its purge: exit %d\n%s", code, out)
	}
	// A stranger's key is refused.
	other := newOperatorKey(t, dir, "mallory.key")
	run(false, "is not an operator key", "archive", "hold", "release", "--bundle", digests[1], "--case", "C-1", "--key", other, "--by", "mallory")
}

// TestArchiveDaemonRetentionConfig starts the archive daemon with
// retention classes and an operator key, and refuses to start it when an
// operator key file is not a public key.
func TestArchiveDaemonRetentionConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeArchiveConfig(t, dir, "", "")
	newOperatorKey(t, dir, "alice.key")
	appendFile(t, cfg, "retention_classes:\n  - {name: 7y, keep: 61320h}\nretention_default_class: 7y\noperator_keys: [alice.key.pub]\n")
	p := startArchiveProc(t, cfg)
	p.stop(t)
	appendFile(t, cfg, "# the private key where the public one belongs\n")
	bad := strings.Replace(fileText(t, cfg), "alice.key.pub", "alice.key", 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "archive", "--config", cfg); code == 0 || !strings.Contains(out, "not a PEM PUBLIC KEY") {
		t.Fatalf("archive with a private key as operator key: exit %d\n%s", code, out)
	}
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
