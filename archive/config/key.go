package config

import (
	"path/filepath"
	"strings"
)

// PKCS11 configures the token holding the archive's key when Key is a
// pkcs11: URI. The user PIN is read from PINFile (mode 0600, one line)
// or from the environment variable PINEnv, exactly one of them; never
// from the command line or the URI.
type PKCS11 struct {
	// Module is the token vendor's PKCS#11 library, an absolute path
	// (SoftHSM2 on Debian: /usr/lib/softhsm/libsofthsm2.so).
	Module  string `yaml:"module"`
	PINFile string `yaml:"pin_file"`
	PINEnv  string `yaml:"pin_env"`
}

// KeyInToken reports whether the archive's key is in a PKCS#11 token.
func (c *Config) KeyInToken() bool { return c.Key != "" }

func (c *Config) validateKey(bad func(key, format string, a ...any)) {
	p := c.PKCS11
	if c.Key == "" {
		if p != (PKCS11{}) {
			bad("pkcs11", "set only with key: pkcs11:token=...;object=...")
		}
		return
	}
	rest, ok := strings.CutPrefix(c.Key, "pkcs11:")
	if !ok || !strings.Contains(rest, "token=") || !strings.Contains(rest, "object=") || strings.Contains(rest, "?") {
		bad("key", "want a PKCS#11 URI pkcs11:token=LABEL;object=LABEL (no PIN in it), got %.80q", c.Key)
	}
	if p.Module == "" || !filepath.IsAbs(p.Module) {
		bad("pkcs11.module", "the token's PKCS#11 library, an absolute path, is required with key")
	}
	if (p.PINFile == "") == (p.PINEnv == "") {
		bad("pkcs11", "set exactly one of pin_file and pin_env")
	}
}
