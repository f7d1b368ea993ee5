// Package signedtest makes policy-admin keys, admin sets and signed
// policies for tests of the agent, the verifier and the CLI.
package signedtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/dsse"
)

// Admins makes one key per name in dir (NAME.key; Ed25519 for even
// positions, ECDSA P-256 for odd ones), writes the admin set of them with
// threshold to dir/admins.json, and returns the keys and the set's path.
func Admins(t testing.TB, dir string, threshold int, names ...string) ([]*signed.Key, string) {
	t.Helper()
	a := signed.Admins{Version: signed.AdminsVersion, Threshold: threshold}
	var keys []*signed.Key
	for i, n := range names {
		path := filepath.Join(dir, n+".key")
		ad, err := signed.WriteKey(path, n, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		k, err := signed.ReadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		a.Admins = append(a.Admins, ad)
		keys = append(keys, k)
	}
	b, err := json.MarshalIndent(&a, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admins.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return keys, path
}

// Sign packs the policy file at policyPath and signs it with keys in
// turn, returning the envelope.
func Sign(t testing.TB, policyPath string, keys ...*signed.Key) []byte {
	t.Helper()
	payload, err := signed.Pack(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	var env []byte
	for _, k := range keys {
		var e *dsse.Envelope
		if env != nil {
			if e, _, _, err = signed.ParseEnvelope(env); err != nil {
				t.Fatal(err)
			}
		}
		if env, err = signed.Sign(context.Background(), e, payload, k); err != nil {
			t.Fatal(err)
		}
	}
	return env
}
