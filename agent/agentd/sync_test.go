package agentd

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// TestCurrentArchiveKey: `agent enroll` verifies the enrollment answer
// under the newest archive key the agent learned, else the configured one.
func TestCurrentArchiveKey(t *testing.T) {
	old, _ := keystore.Generate()
	next, _ := keystore.Generate()
	cfg := &config.Config{DataDir: t.TempDir()}
	root := old.Public().(ed25519.PublicKey)
	if k, err := CurrentArchiveKey(cfg, root); err != nil || !k.Equal(root) {
		t.Fatalf("nothing learned: %v", err)
	}
	ann, err := archivesig.SignArchiveKey(&archivesig.ArchiveKeyAnnouncement{Origin: archive.DefaultName, Seq: 1,
		Time: "2026-01-01T00:00:00.000000Z", OverlapUntil: "2026-01-02T00:00:00.000000Z"}, archivesig.ArchiveKeyID(root), old, next)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := (&archivesig.KeyChainFile{Origin: archive.DefaultName, Announcements: [][]byte{ann}}).Marshal()
	path := filepath.Join(cfg.DataDir, "archive-keys.json")
	os.WriteFile(path, b, 0o644)
	if k, err := CurrentArchiveKey(cfg, root); err != nil || !k.Equal(next.Public()) {
		t.Fatalf("learned key: %v", err)
	}
	other, _ := keystore.Generate()
	if k, err := CurrentArchiveKey(cfg, other.Public().(ed25519.PublicKey)); err != nil || !k.Equal(other.Public()) {
		t.Fatalf("a chain not starting at the configured key: %v", err)
	}
	os.WriteFile(path, []byte("{}"), 0o644)
	if _, err := CurrentArchiveKey(cfg, root); err == nil {
		t.Fatal("a broken archive-keys.json was read")
	}
}
