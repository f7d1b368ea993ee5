package evidence_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// fixture is a device's chain of bundles accepted by one archive log.
type fixture struct{ *bundletest.Accepted }

func newFixture(t testing.TB, n int, opts bundletest.Options) *fixture {
	t.Helper()
	return &fixture{bundletest.MustAccepted(t, n, opts)}
}

// exports returns the exports of bundle i whose payloads it holds.
func (f *fixture) exports(t testing.TB, i int) []proof.Export {
	t.Helper()
	exps, err := proof.Exports(f.Chain.Bundles[i])
	if err != nil {
		t.Fatal(err)
	}
	var out []proof.Export
	for _, e := range exps {
		if _, ok := f.Payload(i, e.Payload); ok {
			out = append(out, e)
		}
	}
	if len(out) < 2 {
		t.Fatalf("bundle %d has %d exports with payloads", i, len(out))
	}
	return out
}

func (f *fixture) consistency(_ context.Context, old, size uint64) ([][32]byte, error) {
	return f.Log.Consistency(old, size)
}

// pack builds and writes the pack of proofs and returns its folder.
func (f *fixture) pack(t testing.TB, proofs ...*proof.Proof) string {
	t.Helper()
	p, err := evidence.Build(t.Context(), evidence.Input{Proofs: proofs, Consistency: f.consistency,
		Selection: "test", Requester: "auditor@example", Now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pack")
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// payloadOf returns the payload bytes of export e of bundle i.
func (f *fixture) payloadOf(i int, e proof.Export) []byte {
	b, _ := f.Payload(i, e.Payload)
	return b
}

// leaks names what of export o a file of a pack holds: its id, its record,
// its payload (raw or base64).
func leaks(data []byte, id string, record, payload []byte) string {
	switch {
	case bytes.Contains(data, []byte(`"`+id+`"`)) || bytes.Contains(data, []byte(`\"`+id+`\"`)) || bytes.Contains(data, []byte(":"+id)):
		return "its export id"
	case bytes.Contains(data, record):
		return "its record"
	case bytes.Contains(data, payload[:64]):
		return "its payload"
	case bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(payload)[:64])):
		return "its payload in base64"
	}
	return ""
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// recipe is VERIFY.md's command blocks, but those of edgeseal itself, as
// one script.
func recipe(t testing.TB, dir string) string {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(dir, evidence.PathVerify))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	n := 0
	for _, m := range shBlock.FindAllStringSubmatch(string(md), -1) {
		if strings.HasPrefix(m[1], "edgeseal ") {
			continue
		}
		script.WriteString(m[1])
		n++
	}
	if n < 4 {
		t.Fatalf("VERIFY.md has %d command blocks", n)
	}
	return script.String()
}

// runRecipe runs the script with bash in dir.
func runRecipe(t testing.TB, dir, script string) (string, error) {
	t.Helper()
	for _, tool := range []string{"bash", "openssl", "sha256sum", "tpm2_checkquote"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s (scripts/deps.sh installs openssl and tpm2-tools)", tool)
		}
	}
	cmd := exec.CommandContext(t.Context(), "bash", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
