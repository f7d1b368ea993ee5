package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	demopkg "github.com/edgeseal/edgeseal/internal/demo"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// readmeBlock returns the shell code block of docs/auditors.md's section that
// contains marker.
func readmeBlock(t *testing.T, section, marker string) string {
	t.Helper()
	raw, err := os.ReadFile(repoFile("docs/auditors.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, "\n## "+section+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", section)
	}
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	for _, part := range strings.Split(text, "```sh\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if ok && strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("README section %q has no sh block with %q", section, marker)
	return ""
}

// runRecipe runs the README's by-hand recipe, as written, in bash from a
// folder holding demo-out/.
func runRecipe(t *testing.T, recipe, dir string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", recipe)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The README's "Verifying a bundle by hand" recipe runs as written against
// bundles the real binary made, and refuses a bundle whose quote is not
// over its own checkpoint.
func TestReadmeRecipe(t *testing.T) {
	needAgent(t)
	for _, tool := range []string{"bash", "jq", "openssl", "tpm2_checkquote", "sha256sum", "base64", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s not found: scripts/deps.sh test installs it", tool)
		}
	}
	recipe := readmeBlock(t, "Verifying a bundle by hand", "tpm2_checkquote")
	dir := t.TempDir()
	demo := filepath.Join(dir, "demo-out")
	if out, errOut, code := runBin(t, "demo", "--dir", demo); code != 0 {
		t.Fatalf("demo exit %d:\n%s%s", code, out, errOut)
	}
	out, err := runRecipe(t, recipe, dir)
	if err != nil {
		t.Fatalf("README recipe failed: %v\n%s\nrecipe:\n%s", err, out, recipe)
	}
	for _, want := range []string{"Public-Key: (256 bit)", "pcrs:", "sig: "} {
		if !strings.Contains(out, want) {
			t.Errorf("recipe output lacks %q:\n%s", want, out)
		}
	}

	// The section's first block, `make demo` already done and `go run
	// ./cmd/edgeseal` standing for the binary.
	first := readmeBlock(t, "Verifying a bundle by hand", "make demo")
	shim := "make() { [ \"$*\" = demo ]; }\n" +
		"go() { [ \"$1 $2\" = \"run ./cmd/edgeseal\" ] || return 99; shift 2; \"$EDGESEAL\" \"$@\"; }\n"
	t.Setenv("EDGESEAL", agentBin)
	out, err = runRecipe(t, shim+first, dir)
	if err != nil || !strings.Contains(out, fmt.Sprintf("summary: %d bundle(s) as one chain", demopkg.Rounds())) || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("README verify block: %v\n%s\nblock:\n%s", err, out, first)
	}

	// The first bundle carrying the second's (genuine) quote, manifests
	// recomputed: the recipe fails at the quote's nonce.
	bundles, _ := filepath.Glob(filepath.Join(demo, "bundles", "*.bundle.tar"))
	if len(bundles) < 2 {
		t.Fatalf("demo left %d bundles", len(bundles))
	}
	b0 := readBundle(t, bundles[0])
	second := readBundle(t, bundles[1])
	for _, p := range []string{bundle.PathQuoteMsg, bundle.PathQuoteSig, bundle.PathQuotePCRs} {
		b0.Files[p] = second.Files[p]
	}
	if err := b0.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	raw, err := b0.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundles[0], raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runRecipe(t, recipe, dir); err == nil {
		t.Fatalf("README recipe accepted a quote over another checkpoint:\n%s", out)
	}
}
