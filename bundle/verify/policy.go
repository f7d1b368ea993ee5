package verify

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// PolicyPayloadType is the DSSE payload type of a signed policy
// (docs/formats.md, "Signed policy").
const PolicyPayloadType = "application/vnd.edgeseal.policy+json"

// PolicyState is the signed policy in force after a bundle: the digest
// exports must name and the admin set that signed it.
type PolicyState struct {
	Digest string `json:"digest"` // "sha256:..."
	Admins string `json:"admins"` // digest of the admin set's canonical JSON
	Seq    uint64 `json:"seq"`    // of its policy.change record
}

// policyChange is a policy.change record body.
type policyChange struct {
	Policy   string          `json:"policy"`
	Reason   string          `json:"reason"`
	Signers  []string        `json:"signers"`
	Admins   json.RawMessage `json:"admins"`
	Envelope json.RawMessage `json:"envelope"`
}

type policyAdmins struct {
	Version   int `json:"version"`
	Threshold int `json:"threshold"`
	Admins    []struct {
		Name      string `json:"name"`
		PublicKey []byte `json:"publicKey"`
	} `json:"admins"`
}

type policyDoc struct {
	Version int               `json:"version"`
	Policy  string            `json:"policy"`
	Files   map[string]string `json:"files"`
}

// PolicyDigest is the digest of a policy file P and its schema files
// (name N -> bytes F): "sha256:" and the hex SHA-256 of u64be(len(P)) || P
// and, for each file in byte order of its name, u64be(len(N)) || N ||
// u64be(len(F)) || F. Exports name the policy in force by it.
func PolicyDigest(policy []byte, files map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(policy)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.SortFunc(names, cmp.Compare[string])
	for _, name := range names {
		put([]byte(name))
		put(files[name])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// checkPolicyChange verifies one policy.change body: its envelope signed
// by at least the threshold of distinct admins of the set it carries, and
// its payload's digest the one the body names. It returns the policy
// digest and the admin set's digest.
func checkPolicyChange(body []byte) (digest, admins string, err error) {
	var c policyChange
	if err := strict.Unmarshal(body, &c); err != nil {
		return "", "", fmt.Errorf("body: %w", err)
	}
	var a policyAdmins
	if err := strict.Unmarshal(c.Admins, &a); err != nil {
		return "", "", fmt.Errorf("admins: %w", err)
	}
	sum := sha256.Sum256(c.Admins) // canonical: the record body is
	admins = "sha256:" + hex.EncodeToString(sum[:])
	if a.Version != 1 || len(a.Admins) == 0 || a.Threshold < 1 || a.Threshold > len(a.Admins) {
		return "", admins, fmt.Errorf("admin set version %d, threshold %d of %d", a.Version, a.Threshold, len(a.Admins))
	}
	env, err := dsse.ParseEnvelope(c.Envelope)
	if err != nil {
		return "", admins, err
	}
	if env.PayloadType != PolicyPayloadType {
		return "", admins, fmt.Errorf("payload type %.80q", env.PayloadType)
	}
	signers := map[string]bool{}
	for _, ad := range a.Admins {
		pub, err := x509.ParsePKIXPublicKey(ad.PublicKey)
		if err != nil {
			return "", admins, fmt.Errorf("admin %.64q: %w", ad.Name, err)
		}
		sum := sha256.Sum256(ad.PublicKey)
		kid := "sha256:" + hex.EncodeToString(sum[:])
		ok := false
		switch k := pub.(type) {
		case ed25519.PublicKey:
			ok = env.VerifyEd25519(kid, k) == nil
		case *ecdsa.PublicKey:
			ok = k.Curve == elliptic.P256() && env.VerifyECDSA(kid, k) == nil
		}
		if ok {
			signers[ad.Name] = true
		}
	}
	if len(signers) < a.Threshold {
		return "", admins, fmt.Errorf("signed by %d of the %d admins required", len(signers), a.Threshold)
	}
	var d policyDoc
	if err := strict.Unmarshal(env.Payload, &d); err != nil || d.Version != 1 {
		return "", admins, fmt.Errorf("payload: version %d: %v", d.Version, err)
	}
	files := make(map[string][]byte, len(d.Files))
	for n, f := range d.Files {
		files[n] = []byte(f)
	}
	digest = PolicyDigest([]byte(d.Policy), files)
	if digest != c.Policy {
		return "", admins, fmt.Errorf("names policy %s, its envelope carries %s", c.Policy, digest)
	}
	return digest, admins, nil
}

// policySigned checks every policy.change record of the bundle.
func (v *verifier) policySigned() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	var errs []string
	n := 0
	for _, r := range v.recs {
		if r.Type != custody.TypePolicyChange {
			continue
		}
		n++
		_, admins, err := checkPolicyChange(r.Body)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("policy.change at seq %d: %v", r.Seq, err))
		case v.t != nil && v.t.PolicyAdmins != "" && admins != v.t.PolicyAdmins:
			errs = append(errs, fmt.Sprintf("policy.change at seq %d: admin set %s, the trust file pins %s", r.Seq, admins, v.t.PolicyAdmins))
		}
	}
	if n == 0 {
		v.note = "no policy.change records"
	}
	return joinErrs(errs)
}

// policyInForce checks that every export names the policy of the last
// policy.change before it in the chain. Before the chain's first
// policy.change (a device on an unsigned policy) exports are not compared.
func (v *verifier) policyInForce() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	var errs []string
	cur := v.policyStart()
	uncompared := 0
	for _, r := range v.recs {
		switch r.Type {
		case custody.TypePolicyChange:
			d, a, err := checkPolicyChange(r.Body)
			if err != nil {
				cur = &PolicyState{Seq: r.Seq} // nothing in force the exports can name
				continue
			}
			cur = &PolicyState{Digest: d, Admins: a, Seq: r.Seq}
		case custody.TypeExport:
			e, err := r.ExportBody()
			if err != nil {
				return err
			}
			switch {
			case cur == nil && v.pinnedFromStart():
				errs = append(errs, fmt.Sprintf("export at seq %d: no policy.change before it, and the trust file pins a policy admin set", r.Seq))
			case cur == nil:
				uncompared++
			case cur.Digest == "":
				errs = append(errs, fmt.Sprintf("export at seq %d: the policy.change at seq %d before it does not verify", r.Seq, cur.Seq))
			case e.Policy != cur.Digest:
				errs = append(errs, fmt.Sprintf("export at seq %d names policy %s, in force is %s (policy.change at seq %d)", r.Seq, e.Policy, cur.Digest, cur.Seq))
			}
		}
	}
	v.policy = cur
	if uncompared > 0 {
		v.note = fmt.Sprintf("%d exports before any policy.change (an unsigned policy): not compared", uncompared)
	}
	return joinErrs(errs)
}

// pinnedFromStart: the trust file pins an admin set and the chain is
// known from its start (the first seal, or a previous state), so an
// export without a policy.change before it is an unsigned policy.
func (v *verifier) pinnedFromStart() bool {
	if v.t == nil || v.t.PolicyAdmins == "" {
		return false
	}
	return v.prev != nil || v.prevCP != nil && v.prevCP.Size == 0
}

// policyStart is the policy in force before the bundle's records.
func (v *verifier) policyStart() *PolicyState {
	if v.prev != nil && v.prev.Policy != nil {
		p := *v.prev.Policy
		return &p
	}
	return nil
}

func (p *PolicyState) check() error {
	if p.Digest != "" {
		if _, err := wire.ParseHash(p.Digest); err != nil {
			return wire.WrapFormat("state", "policy", err)
		}
	}
	if _, err := wire.ParseHash(p.Admins); err != nil && p.Digest != "" {
		return wire.WrapFormat("state", "policy admins", err)
	}
	return nil
}

// PolicyChange verifies one policy.change record body on its own (what
// policy.signed checks of each): its envelope signed by at least the
// threshold of distinct admins of the set it carries, and its payload's
// digest the one the body names. It returns the policy digest and the
// admin set's digest; a pinned set (trust policyAdmins) is the caller's
// comparison.
func PolicyChange(body []byte) (digest, admins string, err error) {
	return checkPolicyChange(body)
}
