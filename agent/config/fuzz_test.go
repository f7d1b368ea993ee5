package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "agent.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		example,
		minimal(""),
		minimal("pcrs: [7, 0]\nseal:\n  interval: 1s\n"),
		minimal("api:\n  socket_mode: 0o600\n  max_body: 1 KiB\n"),
		minimal("principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n    roles: &r [exporter]\n  - name: b\n    token_sha256: " + HashToken("b") + "\n    roles: *r\n"),
		[]byte("a: &a [*a]\n"),
		[]byte("---\n---\n"),
		[]byte("{site: x, device: y, policy: p}"),
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			configErrors(t, err) // every error is a *config.Error
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if strings.Contains(c.Site, "/") || strings.Contains(c.Device, "/") || c.Site == "" || c.Device == "" {
			t.Fatalf("bad names accepted: %q %q", c.Site, c.Device)
		}
		if errs := c.validate(); len(errs) != 0 {
			t.Fatalf("accepted config fails validation: %v", errs[0])
		}
		for i := range c.Principals {
			p := &c.Principals[i]
			if got, ok := c.Principals.Authenticate(p.TokenSHA256); ok {
				t.Fatalf("a stored hash authenticated as %s", got.Name)
			}
		}
	})
}
