package custody_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

var updateKeys = flag.Bool("update-keys", false, "rewrite bundle/custody/testdata/keys")

// sealNext seals the chain's next bundle and verifies it against the
// last state, returning the report.
func sealNext(t *testing.T, c *bundletest.Chain, records int) (*bundle.Bundle, *verify.Report) {
	t.Helper()
	b, err := c.Next(context.Background(), records)
	if err != nil {
		t.Fatal(err)
	}
	var prev *verify.State
	if n := len(c.States); n > 0 {
		prev = c.States[n-1]
	}
	r := verify.Verify(b, c.Trust, prev)
	if r.OK() {
		c.Bundles = append(c.Bundles, b)
		c.States = append(c.States, r.State)
	}
	return b, r
}

// TestKeyRotationChain rotates the signing key three times inside one
// chain: each bundle holding a key.rotate is sealed by the new key, the
// state follows, and a state written and read back keeps following.
func TestKeyRotationChain(t *testing.T) {
	ctx := context.Background()
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 4, KeyCreate: true})
	first := c.Identity.KeyID
	if k := c.States[0].Keys; k == nil || k.Current.KeyID != first || k.Current.Seq != 1 || k.Current.Time == "" {
		t.Fatalf("after key.create: keys %+v", k)
	}
	ids := []string{first}
	for i := range 3 {
		if err := c.Rotate(ctx, bundletest.RotateOptions{Reason: fmt.Sprintf("scheduled %d", i)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Identity.KeyID)
		_, r := sealNext(t, c, 5)
		if !r.OK() {
			t.Fatalf("rotation %d:\n%s", i, r)
		}
		if len(r.Keys) != 2 || r.Keys[0].Event != "rotated" || r.Keys[0].KeyID != ids[i+1] || r.Keys[0].OldKeyID != ids[i] ||
			r.Keys[1].Event != "revoked" || r.Keys[1].KeyID != ids[i] || r.Keys[1].Reason != custody.KeyRevokeRotated {
			t.Fatalf("rotation %d: key events %+v", i, r.Keys)
		}
		k := r.State.Keys
		if k.Current.KeyID != ids[i+1] || !slices.Equal(k.Revoked, ids[:i+1]) {
			t.Fatalf("rotation %d: state keys %+v", i, k)
		}
		// A state file carries the chain.
		raw, err := r.State.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := verify.ParseState(raw)
		if err != nil {
			t.Fatalf("state with keys: %v", err)
		}
		c.States[len(c.States)-1] = back
		// A bundle without key records, sealed by the new key.
		if _, r := sealNext(t, c, 3); !r.OK() || len(r.Keys) != 0 || r.State.Keys.Current.KeyID != ids[i+1] {
			t.Fatalf("after rotation %d:\n%s", i, r)
		}
	}
	// Without the chain's state the trust file's key is in force: a
	// later bundle alone does not verify.
	r := verify.Verify(c.Bundles[len(c.Bundles)-1], c.Trust, nil)
	if chk, _ := r.Get(verify.CheckKeysTrusted); chk.OK || !strings.Contains(chk.Detail, "the key in force is "+first) {
		t.Fatalf("rotated bundle without state: %+v", chk)
	}
}

// keyTamper is one forged rotation and the check that must name it.
type keyTamper struct {
	name   string
	want   string
	detail string // in the failed check's detail
	build  func(t *testing.T, c *bundletest.Chain) *bundle.Bundle
}

var keyTampers = []keyTamper{
	{"signed-by-new-key", verify.CheckKeysChain, "rotation statement is not signed by the key in force",
		func(t *testing.T, c *bundletest.Chain) *bundle.Bundle {
			return rotateAndSeal(t, c, bundletest.RotateOptions{SignWithNew: true})
		}},
	{"certified-by-other-ak", verify.CheckKeysChain, "is not certified by the trusted AK",
		func(t *testing.T, c *bundletest.Chain) *bundle.Bundle {
			return rotateAndSeal(t, c, bundletest.RotateOptions{OtherAK: true})
		}},
	{"record-altered", verify.CheckKeysChain, "rotation statement is not signed by the key in force",
		func(t *testing.T, c *bundletest.Chain) *bundle.Bundle {
			b := rotateAndSeal(t, c, bundletest.RotateOptions{})
			// The attacker holds the device: it rewrites the rotation's
			// reason in the record and its statement, and seals again.
			return editKeyRotate(t, c, b, func(body *custody.KeyRotateBody, st *custody.KeyRotateStatement) {
				body.Reason, st.Reason = "operator", "operator"
			})
		}},
	{"sealed-by-rotated-key", verify.CheckKeysTrusted, "which was revoked; the key in force is",
		func(t *testing.T, c *bundletest.Chain) *bundle.Bundle {
			soft := c.Dev.(bundletest.Soft)
			oldKey, oldID := soft.SigningKey, c.Identity
			if err := c.Rotate(context.Background(), bundletest.RotateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, r := sealNext(t, c, 3); !r.OK() {
				t.Fatalf("rotation:\n%s", r)
			}
			soft.SigningKey, c.Identity = oldKey, oldID
			return rotateAndSeal(t, c, bundletest.RotateOptions{}, true)
		}},
	{"old-key-keeps-sealing", verify.CheckKeysTrusted, "sealed by key",
		func(t *testing.T, c *bundletest.Chain) *bundle.Bundle {
			return rotateAndSeal(t, c, bundletest.RotateOptions{KeepOld: true})
		}},
}

// rotateAndSeal rotates and seals the next bundle without verifying it.
// With old set the rotation queued by the caller's chain is dropped and
// the device seals with the key it had before (see sealed-by-rotated-key).
func rotateAndSeal(t *testing.T, c *bundletest.Chain, o bundletest.RotateOptions, old ...bool) *bundle.Bundle {
	t.Helper()
	if len(old) == 0 {
		if err := c.Rotate(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	b, err := c.Next(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editKeyRotate changes the key.rotate record of b (its statement
// re-encoded, signature kept) and seals the bundle again with the device.
func editKeyRotate(t *testing.T, c *bundletest.Chain, b *bundle.Bundle, fn func(*custody.KeyRotateBody, *custody.KeyRotateStatement)) *bundle.Bundle {
	t.Helper()
	raw, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, line := range raw {
		r, err := custody.ParseRecord(line)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type == custody.TypeKeyRotate {
			body, st, err := custody.ParseKeyRotateBody(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			fn(body, st)
			if body.Statement.Payload, err = st.Marshal(); err != nil {
				t.Fatal(err)
			}
			if err := r.SetBody(body); err != nil {
				t.Fatal(err)
			}
			if line, err = r.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
		out = append(append(out, line...), '\n')
	}
	b.Files[bundle.PathRecords] = out
	_, st, err := b.Statement()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	st.Subject[0].Digest["sha256"] = hex.EncodeToString(sum[:])
	if err := bundle.SignStatement(context.Background(), b, st, c.Dev); err != nil {
		t.Fatal(err)
	}
	if err := b.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyTamperGolden forges rotations and requires each to fail its
// named check with the detail pinned in testdata/keys/tamper.golden (key
// ids replaced by their role).
func TestKeyTamperGolden(t *testing.T) {
	var out strings.Builder
	for _, tc := range keyTampers {
		t.Run(tc.name, func(t *testing.T) {
			c := bundletest.MustChain(t, 1, bundletest.Options{Records: 4, KeyCreate: true})
			roles := map[string]string{c.Identity.KeyID: "OLD", custody.KeyID(c.Identity.AKPublic): "AK"}
			b := tc.build(t, c)
			if r, err := b.Records(); err == nil {
				for _, line := range r {
					if rec, err := custody.ParseRecord(line); err == nil && rec.Type == custody.TypeKeyRotate {
						if body, _, err := custody.ParseKeyRotateBody(rec.Body); err == nil {
							roles[body.NewKeyID] = "NEW"
						}
					}
				}
			}
			if st := c.States[len(c.States)-1].Keys; st != nil && roles[st.Current.KeyID] == "" {
				roles[st.Current.KeyID] = "CURRENT"
			}
			r := verify.Verify(b, c.Trust, c.States[len(c.States)-1])
			chk, _ := r.Get(tc.want)
			if r.OK() || chk.OK || !strings.Contains(chk.Detail, tc.detail) {
				t.Fatalf("%s: %s = %+v, want a failure with %q:\n%s", tc.name, tc.want, chk, tc.detail, r)
			}
			d := regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllStringFunc(chk.Detail, func(id string) string {
				if n, ok := roles[id]; ok {
					return n
				}
				return "OTHER"
			})
			fmt.Fprintf(&out, "%s: %s: %s\n", tc.name, tc.want, d)
		})
	}
	path := filepath.Join("testdata", "keys", "tamper.golden")
	if *updateKeys {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("tamper details differ from %s (rerun with -update-keys after checking):\n%s", path, out.String())
	}
}

// TestParseStateKeys refuses a state whose key chain is malformed, naming
// what is wrong.
func TestParseStateKeys(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 3, KeyCreate: true})
	good := c.States[0]
	if good.Keys == nil {
		t.Fatal("no keys in the state")
	}
	for _, tc := range []struct {
		name, want string
		edit       func(k *verify.KeyState)
	}{
		{"key id", "does not name the public area", func(k *verify.KeyState) { k.Current.KeyID = k.AKID }},
		{"ak id", "akId", func(k *verify.KeyState) { k.AKID = "sha256:xyz" }},
		{"revoked id", "revoked", func(k *verify.KeyState) { k.Revoked = []string{"nope"} }},
		{"too many revoked", "revoked keys", func(k *verify.KeyState) {
			k.Revoked = make([]string, verify.MaxRevokedKeys+1)
			for i := range k.Revoked {
				k.Revoked[i] = k.AKID
			}
		}},
		{"certification", "certification", func(k *verify.KeyState) { k.Current.Certification.Attest = []byte{1, 2} }},
		{"seq without time", "seq but no time", func(k *verify.KeyState) { k.Current.Time, k.Current.Seq = "", 5 }},
	} {
		s := *good
		k := *good.Keys
		k.Current = good.Keys.Current
		s.Keys = &k
		tc.edit(&k)
		raw, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify.ParseState(raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestKeysNewApproval: after a rotation the operator approves another key
// (a new enrollment under the same AK): the new trust file's key is in
// force from the chain's state on; the chain's retired keys stay refused.
func TestKeysNewApproval(t *testing.T) {
	ctx := context.Background()
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 3, KeyCreate: true})
	first := c.Identity.KeyID
	if err := c.Rotate(ctx, bundletest.RotateOptions{NoRevoke: true}); err != nil {
		t.Fatal(err)
	}
	if _, r := sealNext(t, c, 3); !r.OK() || !r.State.Keys.IsRevoked(first) {
		t.Fatalf("rotation without key.revoke: the old key is not retired:\n%s", r)
	}
	rotated := c.Identity
	soft := c.Dev.(bundletest.Soft)
	rotatedKey := soft.SigningKey
	fresh, err := bundletest.NewSoft()
	if err != nil {
		t.Fatal(err)
	}
	soft.SigningKey = fresh.SigningKey
	c.Identity = soft.Identity()
	var errT error
	if c.Trust, errT = trustfile.NewTrust(c.Opts.Site, c.Opts.Device, c.Identity); errT != nil {
		t.Fatal(errT)
	}
	if _, r := sealNext(t, c, 3); !r.OK() || r.State.Keys.Current.KeyID != c.Identity.KeyID || !r.State.Keys.IsRevoked(first) {
		t.Fatalf("bundle of the newly approved key:\n%s", r)
	}
	// The key rotated to before seals again: refused.
	soft.SigningKey, c.Identity = rotatedKey, rotated
	b, err := c.Next(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Verify(b, c.Trust, c.States[len(c.States)-1])
	if chk, _ := r.Get(verify.CheckKeysTrusted); chk.OK || !strings.Contains(chk.Detail, "sealed by key "+rotated.KeyID) {
		t.Fatalf("bundle of a key no longer in force: %+v", chk)
	}
}
