package evidence_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// rehash recomputes both manifests of the pack folder, as anyone holding
// it could.
func rehash(t testing.TB, dir string) {
	t.Helper()
	p, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	rehashPack(p)
	for _, name := range []string{"manifest-sha256.txt", "tagmanifest-sha256.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), p.Files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rehashPack recomputes both manifests and bag-info.txt's Payload-Oxum.
func rehashPack(p *evidence.Pack) {
	var data, tags []string
	octets := 0
	for name := range p.Files {
		switch {
		case strings.HasPrefix(name, "data/"):
			data = append(data, name)
			octets += len(p.Files[name])
		case name != "manifest-sha256.txt" && name != "tagmanifest-sha256.txt":
			tags = append(tags, name)
		}
	}
	render := func(names []string) []byte {
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			s := sha256.Sum256(p.Files[n])
			b.WriteString(hex.EncodeToString(s[:]) + "  " + n + "\n")
		}
		return []byte(b.String())
	}
	if info, ok := p.Files["bag-info.txt"]; ok {
		lines := strings.SplitAfter(string(info), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "Payload-Oxum: ") {
				lines[i] = fmt.Sprintf("Payload-Oxum: %d.%d\n", octets, len(data))
			}
		}
		p.Files["bag-info.txt"] = []byte(strings.Join(lines, ""))
	}
	p.Files["manifest-sha256.txt"] = render(data)
	p.Files["tagmanifest-sha256.txt"] = render(append(tags, "manifest-sha256.txt"))
}

// TestPackTampered: each change to a good pack, manifests recomputed
// unless said, fails the check named.
func TestPackTampered(t *testing.T) {
	f := newFixture(t, 2, bundletest.Options{})
	dir := f.pack(t, f.MustProof(t, 1, f.exports(t, 1)[0].ExportID))
	good, err := evidence.ReadDir(dir, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	other := f.exports(t, 1)[1]
	for _, tc := range []struct {
		name, want string
		keep       bool // manifests left alone
		fn         func(p *evidence.Pack)
	}{
		{"payload.changed.unhashed", evidence.CheckBagIt, true, func(p *evidence.Pack) { p.Files["data/exports/001/payload"][0] ^= 1 }},
		{"payload.changed", "data/exports/001: " + proof.CheckPayloadDigest, false, func(p *evidence.Pack) { p.Files["data/exports/001/payload"][0] ^= 1 }},
		{"proof.payload.embedded", evidence.CheckFiles, false, func(p *evidence.Pack) {
			pr, err := proof.Parse(p.Files["data/exports/001/proof.json"])
			if err != nil {
				t.Fatal(err)
			}
			pr.Payload = p.Files["data/exports/001/payload"]
			p.Files["data/exports/001/proof.json"], _ = pr.Marshal()
		}},
		{"record.file", evidence.CheckFiles, false, func(p *evidence.Pack) {
			p.Files["data/exports/001/record.json"] = []byte(strings.Replace(string(p.Files["data/exports/001/record.json"]), "n8n", "n8x", 1))
		}},
		{"file.extra", evidence.CheckFiles, false, func(p *evidence.Pack) {
			p.Files["data/exports/001/other-payload"] = f.payloadOf(1, other)
		}},
		{"verifymd.edited", evidence.CheckVerifyMD, false, func(p *evidence.Pack) {
			p.Files[evidence.PathVerify] = []byte(strings.Replace(string(p.Files[evidence.PathVerify]), "tpm2_checkquote", "true ||", 1))
		}},
		{"checkpoint.other", evidence.CheckCheckpoints, false, func(p *evidence.Pack) {
			for name := range p.Files {
				if strings.HasPrefix(name, "data/archive/checkpoints/") {
					p.Files[name] = []byte(strings.Replace(string(p.Files[name]), "\n\n", "\nx\n\n", 1))
				}
			}
		}},
		{"prov.dropped", evidence.CheckProv, false, func(p *evidence.Pack) { p.Files[evidence.PathProv] = []byte(`{"@context":{},"@graph":[]}`) }},
		{"index.broken", evidence.CheckIndex, false, func(p *evidence.Pack) { p.Files[evidence.PathIndex] = []byte(`{"v":2}`) }},
	} {
		p := &evidence.Pack{Files: map[string][]byte{}}
		for k, v := range good.Files {
			p.Files[k] = slices.Clone(v)
		}
		tc.fn(p)
		if !tc.keep {
			rehashPack(p)
		}
		rep := evidence.Verify(p, proof.Options{})
		if rep.OK() || !slices.Contains(rep.Failed(), tc.want) {
			t.Errorf("%s: failed %v, want %s", tc.name, rep.Failed(), tc.want)
		}
	}
}

// TestPackExactBytes: white space added to a file the checks parse
// rather than rebuild (the index, the archive key and an earlier key),
// or the index written another way, manifests and Payload-Oxum
// recomputed, fails pack.index; the untouched pack verifies.
func TestPackExactBytes(t *testing.T) {
	f, proofs, _ := rotated(t)
	good, err := evidence.ReadDir(f.pack(t, proofs...), evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := evidence.ParseIndex(good.Files[evidence.PathIndex])
	if err != nil || len(idx.Archive.EarlierKeys) != 1 {
		t.Fatalf("index: %v", err)
	}
	compact, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   func(p *evidence.Pack)
	}{
		{"untouched", func(*evidence.Pack) {}},
		{"index.trailing", func(p *evidence.Pack) { p.Files[evidence.PathIndex] = append(p.Files[evidence.PathIndex], " \n"...) }},
		{"index.leading", func(p *evidence.Pack) {
			p.Files[evidence.PathIndex] = append([]byte("\t"), p.Files[evidence.PathIndex]...)
		}},
		{"index.compact", func(p *evidence.Pack) { p.Files[evidence.PathIndex] = append(compact, '\n') }},
		{"key.trailing", func(p *evidence.Pack) { p.Files[idx.Archive.Key] = append(p.Files[idx.Archive.Key], '\n') }},
		{"key.leading", func(p *evidence.Pack) { p.Files[idx.Archive.Key] = append([]byte(" \n"), p.Files[idx.Archive.Key]...) }},
		{"earlier-key.trailing", func(p *evidence.Pack) {
			k := idx.Archive.EarlierKeys[0].File
			p.Files[k] = append(p.Files[k], "\n\n"...)
		}},
	} {
		p := &evidence.Pack{Files: map[string][]byte{}}
		for k, v := range good.Files {
			p.Files[k] = slices.Clone(v)
		}
		tc.fn(p)
		rehashPack(p)
		rep := evidence.Verify(p, proof.Options{})
		if tc.name == "untouched" {
			if !rep.OK() {
				t.Fatalf("untouched pack, manifests recomputed: %v", rep.Failed())
			}
			continue
		}
		if rep.OK() || !slices.Equal(rep.Failed(), []string{evidence.CheckIndex}) {
			t.Errorf("%s: failed %v, want %s alone", tc.name, rep.Failed(), evidence.CheckIndex)
		}
	}
}

// TestReadDirRefuses: a symbolic link, a FIFO-free folder with a file
// too large, and too many files are refused before anything is checked.
func TestReadDirRefuses(t *testing.T) {
	f := newFixture(t, 1, bundletest.Options{})
	dir := f.pack(t, f.MustProof(t, 0, f.exports(t, 0)[0].ExportID))
	if _, err := evidence.ReadDir(dir, evidence.Limits{File: 1 << 30, Total: 1 << 30, Files: 3}); !isPathErr(err, "too many files") {
		t.Fatalf("too many files: %v", err)
	}
	if _, err := evidence.ReadDir(dir, evidence.Limits{File: 100, Total: 1 << 30, Files: 1000}); !isPathErr(err, "too large") {
		t.Fatalf("too large: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("not the pack's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.ReadDir(dir, evidence.DefaultLimits); !isPathErr(err, "not a regular file") {
		t.Fatalf("symlink: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "data", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.ReadDir(dir, evidence.DefaultLimits); !isPathErr(err, "not a regular file") {
		t.Fatalf("symlink to a folder: %v", err)
	}
}

func isPathErr(err error, reason string) bool {
	var pe *evidence.PathError
	return errors.As(err, &pe) && pe.Reason == reason
}
