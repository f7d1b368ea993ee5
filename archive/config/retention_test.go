package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRetentionClasses(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.yaml")
	yaml := "data_dir: d\nretention_classes:\n  - {name: 7y, keep: 61320h}\n  - {name: short, keep: 1s}\nretention_default_class: 7y\noperator_keys: [ops/alice.key.pub, /abs/bob.pub]\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Classes()
	if len(m) != 2 || m["7y"] != 61320*time.Hour || m["short"] != time.Second || c.RetentionDefaultClass != "7y" {
		t.Fatalf("classes %v default %q", m, c.RetentionDefaultClass)
	}
	if c.OperatorKeys[0] != filepath.Join(dir, "ops/alice.key.pub") || c.OperatorKeys[1] != "/abs/bob.pub" {
		t.Fatalf("operator keys %v", c.OperatorKeys)
	}
	if c, err := Parse([]byte("data_dir: d\n")); err != nil || c.Classes() != nil {
		t.Fatalf("no classes: %v %v", c.Classes(), err)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"retention_classes:\n  - {name: 7y, keep: 1h}\n", "retention_default_class"},
		{"retention_classes:\n  - {name: 7y, keep: 1h}\nretention_default_class: 10y\n", "retention_default_class"},
		{"retention_default_class: 10y\n", "retention_default_class"},
		{"retention_classes:\n  - {name: '7 y', keep: 1h}\nretention_default_class: '7 y'\n", "retention_classes[0].name"},
		{"retention_classes:\n  - {name: 7y, keep: 0s}\nretention_default_class: 7y\n", "retention_classes[0].keep"},
		{"retention_classes:\n  - {name: 7y, keep: 1h}\n  - {name: 7y, keep: 2h}\nretention_default_class: 7y\n", "retention_classes[1].name"},
		{"retention_classes:\n  - {name: 7y, keep: 1h, extra: 1}\n", ""},
	} {
		_, err := Parse([]byte("data_dir: d\n" + tc.yaml))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key && tc.key != "" {
			t.Errorf("%q: %v, want an error on %q", tc.yaml, err, tc.key)
		}
	}
}
