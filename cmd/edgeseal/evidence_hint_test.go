package main

import "testing"

// TestVerifyHint: the command evidence prints to check the pack pins what
// the pack was built with, so the check it suggests is not one against
// the keys the pack carries.
func TestVerifyHint(t *testing.T) {
	for _, c := range []struct {
		trusts []string
		key    string
		want   string
	}{
		{[]string{"DEVICE.json"}, "archive.pub", "edgeseal verify pack --trust DEVICE.json --archive-key archive.pub"},
		{[]string{"a.json", "b.json"}, "archive.pub", "edgeseal verify pack --archive-key archive.pub"},
		{nil, "", "edgeseal verify pack"},
	} {
		if got := verifyHint("pack", c.trusts, c.key); got != c.want {
			t.Errorf("verifyHint(%v, %q) = %q, want %q", c.trusts, c.key, got, c.want)
		}
	}
}
