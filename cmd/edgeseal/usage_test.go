package main

import (
	"strings"
	"testing"
)

// TestUsageFor: a usage error prints the usage lines of the command it is
// about (with a pointer to its flags), not the synopsis of every command;
// an error naming no command prints the whole synopsis.
func TestUsageFor(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    []string
		notWant string
	}{
		{[]string{"verify", "missing.tar", "--trust", "x.json"}, []string{"edgeseal verify BUNDLE|DIR...", "edgeseal verify receipt", "edgeseal help verify"}, "edgeseal agent"},
		{[]string{"policy", "verify", "--threshold", "-1"}, []string{"edgeseal policy verify --admins", "edgeseal help policy verify"}, "edgeseal policy sign"},
		{[]string{"archive", "devices", "approve", "site/dev", "--bogus"}, []string{"approve SITE/NAME", "edgeseal help archive devices approve"}, "edgeseal verify"},
		{[]string{"help", "bundles", "export"}, []string{"edgeseal bundles export --config"}, "edgeseal verify"},
	} {
		got := usageFor(c.args)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("usageFor(%q) lacks %q:\n%s", c.args, w, got)
			}
		}
		if strings.Contains(got, c.notWant) {
			t.Errorf("usageFor(%q) holds %q, another command's usage:\n%s", c.args, c.notWant, got)
		}
	}
	for _, args := range [][]string{nil, {"nonsense"}, {"--bogus"}} {
		if got := usageFor(args); got != usage {
			t.Errorf("usageFor(%q) is not the whole synopsis:\n%s", args, got)
		}
	}
}
