package s3store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	good := map[string]Credentials{
		"AKID\nsecret/key+1\n":            {"AKID", "secret/key+1"},
		"AKID\r\nsecret\r\n":              {"AKID", "secret"},
		"  AKID  \n\tsecret\n\n":          {"AKID", "secret"},
		"AKID\nsecret":                    {"AKID", "secret"},
		"a\n" + strings.Repeat("s", 1024): {"a", strings.Repeat("s", 1024)},
	}
	for in, want := range good {
		if got, err := ParseCredentials([]byte(in)); err != nil || got != want {
			t.Errorf("ParseCredentials(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "AKID", "AKID\n", "AKID\nsecret\nthird", "AKID\n\nsecret", "AK ID\nsecret",
		"AKID\nsec\x00ret", "\nsecret", "AKID\nsec ret", strings.Repeat("x", 5000)} {
		if c, err := ParseCredentials([]byte(in)); err == nil {
			t.Errorf("ParseCredentials(%q) = %+v, want an error", in, c)
		}
	}
}

func TestLoadCredentials(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s3.key")
	if err := os.WriteFile(p, []byte("AKID\nsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvAccessKeyID: "ENVID", EnvSecretAccessKey: "envsecret"}
	if c, err := LoadCredentials(p, func(k string) string { return env[k] }); err != nil || c.AccessKeyID != "AKID" {
		t.Fatalf("file: %+v, %v", c, err)
	}
	if c, err := LoadCredentials("", func(k string) string { return env[k] }); err != nil || c != (Credentials{"ENVID", "envsecret"}) {
		t.Fatalf("env: %+v, %v", c, err)
	}
	delete(env, EnvSecretAccessKey)
	if _, err := LoadCredentials("", func(k string) string { return env[k] }); err == nil {
		t.Fatal("env without a secret accepted")
	}
	if _, err := LoadCredentials(p+".missing", os.Getenv); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{"AKID\nsecret\n", "a\r\nb", "", "x\ny\nz", " \n "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCredentials(data)
		if err != nil {
			return
		}
		for _, v := range []string{c.AccessKeyID, c.SecretAccessKey} {
			if v == "" || strings.ContainsAny(v, " \t\r\n\x00") || !strings.Contains(string(data), v) {
				t.Fatalf("accepted %q from %q", v, data)
			}
		}
		again, err := ParseCredentials([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n"))
		if err != nil || again != c {
			t.Fatalf("round trip %+v: %+v, %v", c, again, err)
		}
	})
}
