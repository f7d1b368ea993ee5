// Command corpusgen writes the conformance corpus of bundles under
// testdata/corpus: bundles the agent itself sealed (its journal, its core
// and the in-process TPM 2.0 reference simulator, so it needs cgo), good
// bundles and chains sealed by a software TPM through the same sealing
// code (bundle.Seal over bundletest's in-memory journal), copies of them
// tampered in one precise way each, the trust files they are checked
// against, and verdicts.json naming for every case its inputs and the
// verdict a verifier must reach (docs/formats.md, "Conformance corpus").
//
// Run it from the repository root:
//
//	go run ./internal/corpusgen -out testdata/corpus
//
// It also writes testdata/vectors/replies-v1.json: the archive's signed
// answers (receipt, rejection, enrollment answer) by a fixed key, the
// same bytes on every run.
//
// Keys and signatures of the corpus are fresh on every run, so every
// file changes; the committed corpus is what tests read, and the
// generator is not needed to run them. Before it writes anything it
// checks every case with this repository's verifier and reports
// (without hiding it) a case the verifier misjudges.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

func main() {
	out := flag.String("out", "testdata/corpus", "directory to write the corpus to")
	format1 := flag.String("format1", "bundle/testdata/unique", "directory holding v1.tar and v1.trust.json, a bundle sealed by the format 1 code")
	vectors := flag.String("vectors", "testdata/vectors", "directory to write the archive reply vectors to (empty: do not write them)")
	flag.Parse()
	if err := run(context.Background(), *out, *format1, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "corpusgen:", err)
		os.Exit(1)
	}
	if *vectors == "" {
		return
	}
	if err := writeReplies(*vectors); err != nil {
		fmt.Fprintln(os.Stderr, "corpusgen:", err)
		os.Exit(1)
	}
}

// writeReplies writes the archive reply vectors (vectors.go) to dir.
func writeReplies(dir string) error {
	v, err := replies()
	if err != nil {
		return err
	}
	raw, err := marshalReplies(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, VectorsFile), raw, 0o644)
}

// run builds the corpus in memory, checks it, and writes it to out,
// replacing what a previous run wrote there.
func run(ctx context.Context, out, format1 string, log io.Writer) error {
	c, err := build(ctx, format1)
	if err != nil {
		return err
	}
	if bad := c.check(); len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(log, "corpusgen: VERIFIER MISJUDGES", b)
		}
		fmt.Fprintf(log, "corpusgen: %d case(s) misjudged; the corpus keeps the correct verdicts\n", len(bad))
	}
	return c.write(out)
}

// corpus is every file by its path under the corpus directory, and the cases.
type corpus struct {
	files map[string][]byte
	doc   Verdicts
}

// Verdicts is the form of verdicts.json.
type Verdicts struct {
	Version int `json:"version"`
	// Limits are the reader's bounds every case is read with.
	Limits Limits `json:"limits"`
	Cases  []Case `json:"cases"`
}

// Limits are bundle.DefaultLimits.
type Limits struct {
	File  int64 `json:"file"`
	Total int64 `json:"total"`
	Files int   `json:"files"`
}

// Case is one verification a verifier must judge as said.
type Case struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Trust       string   `json:"trust"`
	Previous    []string `json:"previous"`
	Bundle      string   `json:"bundle"`
	Verdict     string   `json:"verdict"`           // "verified" or "not-verified"
	Check       string   `json:"check,omitempty"`   // not-verified: the check that must fail
	Refusal     string   `json:"refusal,omitempty"` // check bundle.read: why the reader refuses
}

// Verdict values and the reader's check name.
const (
	Verified    = "verified"
	NotVerified = "not-verified"
	CheckRead   = "bundle.read"
)

func (c *corpus) add(name string, data []byte) string {
	if _, dup := c.files[name]; dup {
		panic("corpusgen: file written twice: " + name)
	}
	c.files[name] = data
	return name
}

func (c *corpus) write(out string) error {
	raw, err := json.MarshalIndent(c.doc, "", "  ")
	if err != nil {
		return err
	}
	c.files["verdicts.json"] = append(raw, '\n')
	// Remove what a previous run wrote (only the corpus's own names).
	for _, sub := range []string{"good", "tampered", "trust", "verdicts.json"} {
		if err := os.RemoveAll(filepath.Join(out, sub)); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(c.files))
	for n := range c.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.Contains(n, "..") || filepath.IsAbs(n) {
			return errors.New("corpusgen: bad corpus path " + n)
		}
		p := filepath.Join(out, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(p, c.files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}
