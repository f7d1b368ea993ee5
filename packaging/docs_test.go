package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// manPage is where the packages install edgeseal(1).
const manPage = "/usr/share/man/man1/edgeseal.1.gz"

// hostDeb is the .deb of this machine's architecture, unpacked, and its
// version; nil when this machine is none of the targets.
func hostDeb(t *testing.T) (string, string) {
	t.Helper()
	key := map[string]string{"amd64": "deb/amd64", "arm64": "deb/arm64", "arm": "deb/armv7"}[runtime.GOARCH]
	if key == "" {
		testenv.Missing(t, "a package for GOARCH %s to run", runtime.GOARCH)
	}
	deb := packages(t).path(t, key)
	root := t.TempDir()
	dpkgDeb(t, "-x", deb, root)
	return root, strings.TrimSuffix(controlField(t, deb, "Version"), "-1")
}

// TestDebManPage: the packaged edgeseal(1) is gzipped roff dated with the
// package time and naming the package's version, it is exactly what the
// packaged binary's `edgeseal help --man` writes (so the page and the
// binary agree), and it has a section for every command with its flags.
func TestDebManPage(t *testing.T) {
	root, version := hostDeb(t)
	f, err := os.Open(filepath.Join(root, manPage))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", manPage, err)
	}
	page, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", manPage, err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header names %q, time %s: want neither (reproducible)", manPage, zr.Name, zr.ModTime)
	}
	epoch := gitEpoch(t)
	date := time.Unix(epoch, 0).UTC().Format("2006-01-02")
	if th := `.TH EDGESEAL 1 "` + date + `" "edgeseal ` + version + `"`; !bytes.Contains(page, []byte("\n"+th)) {
		t.Errorf("%s: no %s line:\n%.400s", manPage, th, page)
	}
	cmd := exec.Command(filepath.Join(root, "usr/bin/edgeseal"), "help", "--man")
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("packaged edgeseal help --man: %v", err)
	}
	if !bytes.Equal(out, page) {
		t.Errorf("%s is not what the packaged binary's edgeseal help --man writes", manPage)
	}
	for _, want := range []string{".SH SYNOPSIS", ".SH COMMANDS", ".SS edgeseal agent\n", ".SS edgeseal doctor\n", ".SS edgeseal verify\n",
		".SS edgeseal archive devices approve\n", `\-\-config`, `\-trust`, ".SH FILES", "/usr/share/doc/edgeseal/examples/"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("%s lacks %q", manPage, want)
		}
	}
}

// TestDebDocs: the packaged example policy loads as the agent loads its
// policy (with its schemas, from where the package puts them), names
// principals of the example agent config's comments, and every link from
// the packaged README to docs/ finds its document in the package.
func TestDebDocs(t *testing.T) {
	root, _ := hostDeb(t)
	doc := filepath.Join(root, "usr/share/doc/edgeseal")
	p, err := policy.Load(filepath.Join(doc, "examples", "policy.yaml"))
	if err != nil {
		t.Fatalf("the packaged example policy does not load: %v", err)
	}
	if p.Digest() == "" {
		t.Error("example policy without a digest")
	}
	readme, err := os.ReadFile(filepath.Join(doc, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\((docs/[A-Za-z0-9._-]+\.md)`).FindAllSubmatch(readme, -1)
	if len(links) < 3 {
		t.Fatalf("the README links %d documents of docs/", len(links))
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(doc, string(l[1]))); err != nil {
			t.Errorf("the packaged README links %s, not in the package: %v", l[1], err)
		}
	}
}
