package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyKeygenRefusedLeavesNoKey: an admin set keygen cannot add the
// key to (malformed, a directory, a symbolic link, larger than its bound,
// a threshold it cannot meet, the name already there, a negative
// threshold) fails naming why and leaves no private key behind, and the
// set file as it was.
func TestPolicyKeygenRefusedLeavesNoKey(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	if err := cmdPolicyKeygen([]string{"--out", in("alice.key"), "--name", "alice", "--admins", in("set.json")}, io.Discard); err != nil {
		t.Fatal(err)
	}
	set, err := os.ReadFile(in("set.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("bad.json"), []byte(`{"version":1,"bogus":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(in("adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(in("set.json"), in("link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("big.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(in("big.json"), maxAdminsSize+1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"malformed set", []string{"--name", "bob", "--admins", in("bad.json")}, "bad.json", 2},
		{"set is a directory", []string{"--name", "bob", "--admins", in("adir")}, "is a directory", 2},
		{"set is a link", []string{"--name", "bob", "--admins", in("link.json")}, in("link.json") + ": a symbolic link is refused", 2},
		{"set too large", []string{"--name", "bob", "--admins", in("big.json")}, in("big.json") + ": larger than", 2},
		{"threshold above the set", []string{"--name", "bob", "--admins", in("set.json"), "--threshold", "3"}, "threshold 3", 1},
		{"name twice", []string{"--name", "alice", "--admins", in("set.json")}, "listed twice", 1},
		{"negative threshold", []string{"--name", "bob", "--admins", in("set.json"), "--threshold", "-1"}, "--threshold -1", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := in(strings.ReplaceAll(c.name, " ", "-") + ".key")
			err := cmdPolicyKeygen(append([]string{"--out", key}, c.args...), io.Discard)
			code := 1
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || code != c.code {
				t.Fatalf("err %v (exit %d), want %q (exit %d)", err, code, c.want, c.code)
			}
			if _, err := os.Lstat(key); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused key %s was left behind (%v)", key, err)
			}
			if got, _ := os.ReadFile(in("set.json")); string(got) != string(set) {
				t.Fatal("the admin set changed")
			}
		})
	}
}

// TestPolicyVerifyBadInput: a negative threshold is a usage error, and an
// unreadable admin set or signed file is named with exit 2.
func TestPolicyVerifyBadInput(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	if err := cmdPolicyKeygen([]string{"--out", in("alice.key"), "--name", "alice", "--admins", in("set.json")}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("empty.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--admins", in("set.json"), "--threshold", "-1", in("empty.json")}, "--threshold -1", 2},
		{[]string{"--admins", in("empty.json"), in("empty.json")}, "admin set " + in("empty.json"), 2},
		{[]string{"--admins", in("set.json"), dir}, "is a directory", 2},
		{[]string{"--admins", in("set.json"), in("empty.json")}, in("empty.json"), 1},
	} {
		err := cmdPolicyVerify(c.args, io.Discard)
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || code != c.code {
			t.Errorf("policy verify %v: err %v (exit %d), want %q (exit %d)", c.args, err, code, c.want, c.code)
		}
	}
}

// TestPolicySignNamesFile: a policy file that does not parse (bad YAML,
// an unknown key) is refused naming the file.
func TestPolicySignNamesFile(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	if err := cmdPolicyKeygen([]string{"--out", in("alice.key"), "--name", "alice", "--admins", in("set.json")}, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"broken.yaml": "version: [\n", "unknown-key.yaml": "bogus: 1\n"} {
		if err := os.WriteFile(in(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		err := cmdPolicySign(t.Context(), []string{"--key", in("alice.key"), in(name), "--out", in("signed.json")}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "policy sign: "+in(name)+": ") {
			t.Errorf("%s: %v, want the file named", name, err)
		}
	}
	if _, err := os.Lstat(in("signed.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a signed policy was written: %v", err)
	}
}
