//go:build cgo

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore/softhsmtest"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestContentKeyWrapPKCS11: with content_key_wrap naming an AES key in a
// SoftHSM2 token, `archive content-key new --generate-wrap-key` creates
// the key in the token and writes the content private key wrapped (no
// plain key file); `archive import` of bundles sealed to that content
// key unwraps it with the token and opens every payload (accepted); a
// rotation is wrapped too; without the token's PIN the archive refuses
// to open the wrapped keys, by name.
func TestContentKeyWrapPKCS11(t *testing.T) {
	needAgent(t)
	tok := softhsmtest.New(t, "edgeseal")
	t.Setenv("EDGESEAL_TEST_PIN", tok.PIN)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "archive.yaml")
	yaml := fmt.Sprintf("data_dir: data\ncontent_key_wrap: \"pkcs11:token=edgeseal;object=content-wrap\"\npkcs11:\n  module: %s\n  pin_env: EDGESEAL_TEST_PIN\n", tok.Module)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ann := filepath.Join(dir, "content-key.json")
	out, code := runCmd(t, "archive", "content-key", "new", "--generate-wrap-key", "--config", cfg, "--out", ann)
	if code != 0 || !strings.Contains(out, "wrap key created in the token") {
		t.Fatalf("content-key new --generate-wrap-key: exit %d\n%s", code, out)
	}
	keys := filepath.Join(dir, "data", "content-keys")
	if _, err := os.Stat(filepath.Join(keys, "1.key.wrapped")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keys, "1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a plain content key file: %v", err)
	}
	raw, err := os.ReadFile(ann)
	if err != nil {
		t.Fatal(err)
	}
	_, an, err := archivesig.ParseContentKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := an.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Site: "site1", Device: "dev1", ContentKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"archive", "enroll-file", writeTrust(t, c), "--config", cfg},
		{"archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--config", cfg},
		{"archive", "content-key", "rotate", "--config", cfg},
	} {
		if out, code := runCmd(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	if _, err := os.Stat(filepath.Join(keys, "2.key.wrapped")); err != nil {
		t.Fatal(err)
	}
	media, _ := writeMedia(t, c)
	if out, code := runCmd(t, "archive", "import", media, "--config", cfg); code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
		t.Fatalf("archive import: exit %d\n%s", code, out)
	}
	out, code = runCmdEnv(t, []string{"EDGESEAL_TEST_PIN=0000"}, "archive", "content-key", "show", "--config", cfg)
	if code == 0 || !strings.Contains(out, "content_key_wrap") || !strings.Contains(out, "PIN") {
		t.Fatalf("content-key show with a wrong PIN: exit %d\n%s", code, out)
	}
}
