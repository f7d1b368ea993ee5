//go:build unix

package store

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// TestOpenLocked: a journal another process holds open is ErrLocked.
func TestOpenLocked(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		testenv.Missing(t, "flock(1) not found: %v", err)
	}
	dir := t.TempDir()
	// flock(1) takes the same exclusive lock Badger takes on the dir (-o:
	// held by flock itself, not by sleep, so killing it frees the lock).
	cmd := exec.Command(flock, "-x", "-o", dir, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := probeLock(dir); errors.Is(err, ErrLocked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock of flock(1) never showed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Open(context.Background(), Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("open of a locked journal: %v, want ErrLocked", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	j, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatalf("open after the lock is gone: %v", err)
	}
	j.Close()
}
