package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// signedPolicy is a policy.change body signed by one Ed25519 admin, and
// the policy's digest.
func signedPolicy(t *testing.T) (body []byte, digest string) {
	t.Helper()
	canon := func(v any) []byte {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jcs.Transform(raw)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	text := "workflows: {}\n"
	payload := canon(map[string]any{"version": 1, "policy": text, "files": map[string]string{}})
	sum := sha256.Sum256(der)
	env := &dsse.Envelope{PayloadType: verify.PolicyPayloadType, Payload: payload,
		Signatures: []dsse.Signature{{KeyID: "sha256:" + hex.EncodeToString(sum[:]), Sig: ed25519.Sign(priv, dsse.PAE(verify.PolicyPayloadType, payload))}}}
	envBytes, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	digest = verify.PolicyDigest([]byte(text), map[string][]byte{})
	set := canon(map[string]any{"version": 1, "threshold": 1, "admins": []map[string]any{{"name": "alice", "publicKey": der}}})
	return canon(map[string]any{"policy": digest, "reason": "start", "signers": []string{"alice"},
		"admins": json.RawMessage(set), "envelope": json.RawMessage(envBytes)}), digest
}

// TestPackPolicies: an export of the bundle that journaled the signed
// policy it names carries that policy.change record in its proof
// (policy.signed), and the pack holds the policy as a file of its own
// (pack.policies); VERIFY.md still passes.
func TestPackPolicies(t *testing.T) {
	body, digest := signedPolicy(t)
	c, err := bundletest.NewChain(t.Context(), nil, 0, bundletest.Options{Policy: digest})
	if err != nil {
		t.Fatal(err)
	}
	c.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, body)
	for range 2 {
		b, err := c.Next(t.Context(), 6)
		if err != nil {
			t.Fatal(err)
		}
		c.Bundles = append(c.Bundles, b)
	}
	a, err := bundletest.NewAccepted(c)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{a}
	same := f.MustProof(t, 0, f.exports(t, 0)[0].ExportID)
	if len(same.Records) < 2 || !strings.Contains(same.Records[0].Record, `"type":"export"`) {
		t.Fatalf("proof records: %d", len(same.Records))
	}
	rep := proof.Verify(same, proof.Options{})
	if c, _ := rep.Get(proof.CheckPolicySigned); !rep.OK() || !strings.Contains(c.Detail, "signed (record") {
		t.Fatalf("proof with its policy: %v %+v", rep.Failed(), c)
	}
	later := f.MustProof(t, 1, f.exports(t, 1)[0].ExportID)
	p, err := evidence.Build(t.Context(), evidence.Input{Proofs: []*proof.Proof{same, later}, Policies: [][]byte{body}, Consistency: f.consistency})
	if err != nil {
		t.Fatal(err)
	}
	file := "data/policies/" + strings.TrimPrefix(digest, "sha256:") + ".json"
	if string(p.Files[file]) != string(body) {
		t.Fatalf("pack lacks %s", file)
	}
	prep := evidence.Verify(p, proof.Options{})
	if c, _ := (&verify.Report{Checks: prep.Checks}).Get(evidence.CheckPolicies); !prep.OK() || c.Detail != "" {
		t.Fatalf("pack: %v %+v", prep.Failed(), c)
	}
	dir := t.TempDir() + "/pack"
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if out, err := runRecipe(t, dir, recipe(t, dir)); err != nil {
		t.Fatalf("VERIFY.md: %v\n%s", err, out)
	}
	// The policy file is the record body's canonical JSON: with white
	// space added (manifests recomputed) it fails pack.policies.
	p.Files[file] = append(p.Files[file], '\n')
	rehashPack(p)
	if rep := evidence.Verify(p, proof.Options{}); rep.OK() || !slices.Contains(rep.Failed(), evidence.CheckPolicies) {
		t.Fatalf("policy file with a trailing newline: failed %v, want %s", rep.Failed(), evidence.CheckPolicies)
	}
}
