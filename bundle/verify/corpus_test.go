package verify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// corpusDir is the conformance corpus at the repository root
// (docs/formats.md, "Conformance corpus").
const corpusDir = "../../testdata/corpus"

// corpusVerdicts is testdata/corpus/verdicts.json.
type corpusVerdicts struct {
	Version int `json:"version"`
	Limits  struct {
		File  int64 `json:"file"`
		Total int64 `json:"total"`
		Files int   `json:"files"`
	} `json:"limits"`
	Cases []corpusCase `json:"cases"`
}

type corpusCase struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Trust       string   `json:"trust"`
	Previous    []string `json:"previous"`
	Bundle      string   `json:"bundle"`
	Verdict     string   `json:"verdict"`
	Check       string   `json:"check"`
	Refusal     string   `json:"refusal"`
}

// checkRead is the verdict's name for the reader refusing the bundle
// before any check of verify.Verify runs.
const checkRead = "bundle.read"

func loadCorpus(t testing.TB) *corpusVerdicts {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, "verdicts.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v corpusVerdicts
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("verdicts.json: %v", err)
	}
	if v.Version != 1 {
		t.Fatalf("verdicts.json version %d, want 1", v.Version)
	}
	return &v
}

// readRefusal names why bundle.ReadBytes refused a bundle, in the words
// of verdicts.json's "refusal".
func readRefusal(err error) string {
	var pe *bundle.PathError
	var fe *wire.FormatError
	switch {
	case errors.As(err, &pe):
		return pe.Reason // missing, unknown path, not a regular file, duplicate
	case errors.Is(err, wire.ErrTooLarge):
		return "too large"
	case errors.As(err, &fe) && fe.Format == "tar" && strings.HasPrefix(fe.Reason, "not the canonical"):
		return "not canonical tar"
	case errors.As(err, &fe) && fe.Format == "tar":
		return "bad tar"
	}
	return "unexpected: " + err.Error()
}

// TestCorpusVerdicts judges every case of the conformance corpus with the
// reader and the verifier: the verdict, and for a refused bundle the
// check (or the reader's refusal) verdicts.json names.
func TestCorpusVerdicts(t *testing.T) {
	v := loadCorpus(t)
	lim := bundle.Limits{File: v.Limits.File, Total: v.Limits.Total, Files: v.Limits.Files}
	if lim != bundle.DefaultLimits {
		t.Errorf("verdicts.json limits %+v, the reader's defaults are %+v", lim, bundle.DefaultLimits)
	}
	read := func(t *testing.T, name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(corpusDir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seen := map[string]bool{}
	for _, cs := range v.Cases {
		if seen[cs.Name] {
			t.Errorf("case %s listed twice", cs.Name)
		}
		seen[cs.Name] = true
		t.Run(cs.Name, func(t *testing.T) {
			switch {
			case cs.Verdict == "verified" && cs.Check == "" && cs.Refusal == "":
			case cs.Verdict == "not-verified" && slices.Contains(verify.CheckNames, cs.Check) && cs.Refusal == "":
			case cs.Verdict == "not-verified" && cs.Check == checkRead && cs.Refusal != "":
			default:
				t.Fatalf("malformed case: verdict %q check %q refusal %q", cs.Verdict, cs.Check, cs.Refusal)
			}
			trust, err := trustfile.ParseTrust(read(t, cs.Trust))
			if err != nil {
				t.Fatalf("trust %s: %v", cs.Trust, err)
			}
			var prev *verify.State
			for _, p := range cs.Previous {
				b, err := bundle.ReadBytes(read(t, p), lim)
				if err != nil {
					t.Fatalf("previous %s: %v", p, err)
				}
				r := verify.Verify(b, trust, prev)
				if !r.OK() {
					t.Fatalf("previous %s does not verify:\n%s", p, r)
				}
				prev = r.State
			}
			b, err := bundle.ReadBytes(read(t, cs.Bundle), lim)
			if err != nil {
				if cs.Check != checkRead {
					t.Fatalf("the reader refused %s (%v); want verdict %s %s", cs.Bundle, err, cs.Verdict, cs.Check)
				}
				if got := readRefusal(err); got != cs.Refusal {
					t.Fatalf("the reader refused %s as %q (%v), want %q", cs.Bundle, got, err, cs.Refusal)
				}
				return
			}
			if cs.Check == checkRead {
				// A tampered bundle the reader accepts is a verifier bug.
				r := verify.Verify(b, trust, prev)
				t.Fatalf("VERIFIER BUG: the reader accepted %s, want it refused (%s); Verify: OK=%v failed %v", cs.Bundle, cs.Refusal, r.OK(), r.Failed())
			}
			r := verify.Verify(b, trust, prev)
			switch {
			case cs.Verdict == "verified" && !r.OK():
				t.Fatalf("%s does not verify:\n%s", cs.Bundle, r)
			case cs.Verdict == "not-verified" && r.OK():
				t.Fatalf("VERIFIER BUG: tampered %s (%s) VERIFIED; %s must fail", cs.Bundle, cs.Description, cs.Check)
			case cs.Verdict == "not-verified" && !slices.Contains(r.Failed(), cs.Check):
				t.Fatalf("%s: want check %s to fail, failed %v:\n%s", cs.Bundle, cs.Check, r.Failed(), r)
			}
		})
	}
}

// TestCorpusFilesListed fails when a file of the corpus is named by no
// case or a file a case names is missing.
func TestCorpusFilesListed(t *testing.T) {
	v := loadCorpus(t)
	listed := map[string]bool{}
	for _, cs := range v.Cases {
		listed[cs.Trust], listed[cs.Bundle] = true, true
		for _, p := range cs.Previous {
			listed[p] = true
		}
	}
	present := map[string]bool{}
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(corpusDir, p)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file", rel)
		}
		present[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range present {
		if !listed[p] && p != "verdicts.json" && p != "README.md" {
			t.Errorf("%s is in the corpus but no case of verdicts.json names it", p)
		}
	}
	for p := range listed {
		if p == "" || strings.Contains(p, "..") || strings.HasPrefix(p, "/") {
			t.Errorf("bad corpus path %q", p)
			continue
		}
		if !present[p] {
			t.Errorf("%s is named by verdicts.json but missing from the corpus", p)
		}
	}
}
