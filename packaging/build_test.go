package packaging

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	gobuild "go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// need returns the path of tool, failing the test when it is missing under
// CI=true and skipping it otherwise.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	testenv.Missing(t, "%s (%v): scripts/deps.sh test installs it", tool, err)
	return ""
}

// goCmd is the go command running these tests.
func goCmd() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(gobuild.Default.GOROOT, "bin", "go")
}

// tmpBase holds every build of this test run; TestMain removes it.
var tmpBase string

func TestMain(m *testing.M) {
	var err error
	if tmpBase, err = os.MkdirTemp("", "edgeseal-packaging-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpBase)
	os.Exit(code)
}

// build is one run of packaging/build: the packages and their names by
// format and arch ("deb/amd64").
type build struct {
	dir   string
	files map[string]string // "deb/amd64" -> file name in dir
	log   string
}

// runBuild runs packaging/build for every arch (-arch all, as `make package
// ARCHS=all`) and format into a new
// directory under tmpBase, with env added to the environment.
func runBuild(name string, env ...string) (*build, error) {
	dir := filepath.Join(tmpBase, name)
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(goCmd(), "-C", "build", "run", ".", "-root", root, "-out", dir, "-arch", "all")
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("packaging/build: %w\n%s", err, out.String())
	}
	b := &build{dir: dir, files: map[string]string{}, log: out.String()}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n := e.Name()
		for key, suffix := range map[string]string{
			"deb/amd64": "_amd64.deb", "deb/arm64": "_arm64.deb", "deb/armv7": "_armhf.deb",
			"rpm/amd64": ".x86_64.rpm", "rpm/arm64": ".aarch64.rpm", "rpm/armv7": ".armv7hl.rpm",
		} {
			if strings.HasSuffix(n, suffix) {
				if old, dup := b.files[key]; dup {
					return nil, fmt.Errorf("two packages for %s: %s and %s", key, old, n)
				}
				b.files[key] = n
			}
		}
	}
	if len(b.files) != 6 {
		return nil, fmt.Errorf("want 6 packages (deb and rpm for amd64, arm64, armv7), got %v in %s", b.files, dir)
	}
	return b, nil
}

var first struct {
	once sync.Once
	b    *build
	err  error
}

// packages is the build of this test run, made once as `make package`
// makes it (version and time from git).
func packages(t *testing.T) *build {
	t.Helper()
	need(t, "git")
	first.once.Do(func() { first.b, first.err = runBuild("first") })
	if first.err != nil {
		t.Fatal(first.err)
	}
	return first.b
}

// path is the file of key ("deb/amd64").
func (b *build) path(t *testing.T, key string) string {
	t.Helper()
	n, ok := b.files[key]
	if !ok {
		t.Fatalf("no package %s in %v", key, b.files)
	}
	return filepath.Join(b.dir, n)
}

// dpkgDeb runs dpkg-deb with args and returns its stdout.
func dpkgDeb(t *testing.T, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(need(t, "dpkg-deb"), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// debEntry is one member of a .deb's data tar, contents included.
type debEntry struct {
	hdr  *tar.Header
	data []byte
}

// debTar reads the data tar of deb (dpkg-deb --fsys-tarfile).
func debTar(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(dpkgDeb(t, "--fsys-tarfile", deb)))
	m := map[string]debEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatalf("%s: data tar: %v", deb, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", deb, h.Name, err)
		}
		m[strings.TrimPrefix(h.Name, ".")] = debEntry{hdr: h, data: data}
	}
}

// controlField is one field of a .deb's control file (dpkg-deb -f).
func controlField(t *testing.T, deb, field string) string {
	t.Helper()
	return strings.TrimSpace(string(dpkgDeb(t, "-f", deb, field)))
}
