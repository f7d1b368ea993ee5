package packaging

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// TestMakePackageArches: `make package` packs for this machine's
// architecture, ARCHS=all for every target, as packaging/build resolves
// them.
func TestMakePackageArches(t *testing.T) {
	mk := need(t, "make")
	for _, c := range []struct {
		args []string
		arch string
	}{
		{nil, "-arch host"},
		{[]string{"ARCHS=all"}, "-arch all"},
		{[]string{"ARCHS=arm64,armv7"}, "-arch arm64,armv7"},
	} {
		out, err := exec.Command(mk, append([]string{"-C", "..", "-n", "package"}, c.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("make -n package %v: %v\n%s", c.args, err, out)
		}
		if !strings.Contains(string(out), "packaging/build run .") || !strings.Contains(string(out), c.arch) {
			t.Errorf("make -n package %v: no %q:\n%s", c.args, c.arch, out)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	host := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armv7"}[runtime.GOARCH]
	if host == "" {
		testenv.Missing(t, "a package target for GOARCH %s", runtime.GOARCH)
	}
	for arch, want := range map[string]string{"host": host, "all": "amd64\narm64\narmv7", "armv7,host": strings.Join(sortedUnique(host, "armv7"), "\n")} {
		out, err := exec.Command(goCmd(), "-C", "build", "run", ".", "-root", root, "-arch", arch, "-list").Output()
		if err != nil {
			t.Fatalf("packaging/build -arch %s -list: %v", arch, err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("-arch %s: %q, want %q", arch, got, want)
		}
	}
	if out, err := exec.Command(goCmd(), "-C", "build", "run", ".", "-root", root, "-arch", "sparc", "-list").CombinedOutput(); err == nil {
		t.Errorf("-arch sparc accepted:\n%s", out)
	}
}

func sortedUnique(a, b string) []string {
	if a == b {
		return []string{a}
	}
	if a > b {
		a, b = b, a
	}
	return []string{a, b}
}
