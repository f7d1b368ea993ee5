package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	archiveconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle"
)

// pubFile matches a public key file name in docs and configs.
var pubFile = regexp.MustCompile(`[A-Za-z0-9_.-]+\.pub\b`)

// outFile matches the file a key-pair command writes (--out FILE).
var outFile = regexp.MustCompile(`(?:recovery-keygen|pcr-key new|operator keygen|evidence keygen) --out ([A-Za-z0-9_./-]+)`)

// keyPath matches an absolute path of a private key or certificate file
// (public keys are copied between hosts under one name on purpose).
var keyPath = regexp.MustCompile(`/(?:etc|var/lib)/[A-Za-z0-9_./-]+`)

// TestKeyFileNames: every public key file the docs and example configs name
// is one edgeseal writes: the archive's key_file plus ".pub", or a key of a
// bundle. An operator who copies a file by the name the README gives finds
// it under that name.
func TestKeyFileNames(t *testing.T) {
	raw, err := os.ReadFile("nfpm/etc/archive.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := archiveconfig.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	archivePub := filepath.Base(ar.KeyFile) + ".pub"
	known := map[string]bool{archivePub: true}
	for _, p := range []string{bundle.PathSigningPub, bundle.PathAKPub, bundle.PathEKPub} {
		known[filepath.Base(p)] = true
	}
	var files []string
	for _, g := range []string{"../README.md", "../docs/*.md", "nfpm/etc/*.yaml", "../agent/config/testdata/*.yaml", "../archive/config/testdata/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	// The operator's own key pairs (tpm recovery-keygen, tpm pcr-key new,
	// archive operator keygen, evidence keygen) are written as --out FILE and FILE.pub: a
	// name the docs make that way is one edgeseal writes.
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range outFile.FindAllStringSubmatch(string(raw), -1) {
			known[filepath.Base(m[1])+".pub"] = true
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			for _, name := range pubFile.FindAllString(line, -1) {
				if !known[name] {
					t.Errorf("%s:%d names %q; edgeseal writes %v", f, i+1, name, known)
				}
			}
		}
	}
	// One name, one file: no two paths of the docs and configs share a key
	// or certificate file name (an operator copies by name).
	byName := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range keyPath.FindAllString(string(raw), -1) {
			p = strings.TrimRight(p, ".")
			if ext := filepath.Ext(p); ext != ".key" && ext != ".pem" && ext != ".crt" {
				continue
			}
			if other, ok := byName[filepath.Base(p)]; ok && other != p {
				t.Errorf("%s names %s, elsewhere %s: two files called %s", f, p, other, filepath.Base(p))
			}
			byName[filepath.Base(p)] = p
		}
	}
	// The packaged agent config points sync.archive_key at that name.
	raw, err = os.ReadFile("nfpm/etc/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`archive_key: /etc/edgeseal/` + regexp.QuoteMeta(archivePub) + `\b`).Match(raw) {
		t.Errorf("nfpm/etc/agent.yaml: sync.archive_key does not name /etc/edgeseal/%s", archivePub)
	}
}
