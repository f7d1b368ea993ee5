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

// ContentKeysWrapped reports whether the content private keys are
// wrapped at rest by a key in a PKCS#11 token (content_key_wrap).
func (c *Config) ContentKeysWrapped() bool { return c.ContentKeyWrap != "" }

func (c *Config) validateKey(bad func(key, format string, a ...any)) {
	p := c.PKCS11
	if c.Key == "" && c.ContentKeyWrap == "" {
		if p != (PKCS11{}) {
			bad("pkcs11", "set only with key or content_key_wrap: pkcs11:token=...;object=...")
		}
		return
	}
	for _, k := range []struct{ name, uri string }{{"key", c.Key}, {"content_key_wrap", c.ContentKeyWrap}} {
		if k.uri == "" {
			continue
		}
		rest, ok := strings.CutPrefix(k.uri, "pkcs11:")
		if !ok || !strings.Contains(rest, "token=") || !strings.Contains(rest, "object=") || strings.Contains(rest, "?") {
			bad(k.name, "want a PKCS#11 URI pkcs11:token=LABEL;object=LABEL (no PIN in it), got %.80q", k.uri)
		}
	}
	if p.Module == "" || !filepath.IsAbs(p.Module) {
		bad("pkcs11.module", "the token's PKCS#11 library, an absolute path, is required with key and content_key_wrap")
	}
	if (p.PINFile == "") == (p.PINEnv == "") {
		bad("pkcs11", "set exactly one of pin_file and pin_env")
	}
}
