//go:build linux

// Package tmpfstest mounts small tmpfs file systems for disk-full tests.
package tmpfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Mount mounts a tmpfs of size bytes on a fresh directory and unmounts it
// at cleanup. Without the privilege to mount it skips, except under
// CI=true where the test must run.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		testenv.Missing(t, "mount tmpfs on %s: %v (run as root, or in a container with CAP_SYS_ADMIN)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Logf("unmount %s: %v; detaching", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}
