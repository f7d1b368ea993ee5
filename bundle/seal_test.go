package bundle_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

type keySigner struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k keySigner) KeyID() string { return k.id }
func (k keySigner) Sign(_ context.Context, d []byte) ([]byte, error) {
	return ecdsa.SignASN1(rand.Reader, k.key, d)
}

func TestEnvelope(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := keySigner{"sha256:k1", key}
	env, err := dsse.SignEnvelope(context.Background(), s, "text/plain", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := dsse.ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.VerifyECDSA("sha256:k1", &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	var se *wire.SignatureError
	if err := back.VerifyECDSA("sha256:k2", &key.PublicKey); !errors.As(err, &se) {
		t.Errorf("other key id: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := back.VerifyECDSA("sha256:k1", &other.PublicKey); err == nil {
		t.Error("other key verified")
	}
	back.PayloadType = "text/html"
	if err := back.VerifyECDSA("sha256:k1", &key.PublicKey); err == nil {
		t.Error("payload type not bound by the signature")
	}
	for name, bad := range map[string]string{
		"unknown field": strings.Replace(string(raw), `"payloadType"`, `"x":1,"payloadType"`, 1),
		"no signatures": strings.Replace(string(raw), string(raw[strings.Index(string(raw), `"signatures":`):len(raw)-1]), `"signatures":[]`, 1),
		"spaces":        strings.Replace(string(raw), `,`, `, `, 1),
		"bad base64":    strings.Replace(string(raw), `"payload":"`, `"payload":"!`, 1),
	} {
		if _, err := dsse.ParseEnvelope([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}

func TestSealInputChecks(t *testing.T) {
	ctx := context.Background()
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	dev := c.Dev
	q, err := dev.Quote(ctx, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	cp := merkle.Checkpoint{Origin: merkle.Origin("site1/dev1"), Size: 2}.Marshal()
	in := bundle.SealInput{Records: [][]byte{[]byte("{}")}, Checkpoint: cp, Quote: q, Identity: c.Identity, Signer: dev}
	if _, err := bundle.Seal(ctx, in); err == nil {
		t.Error("1 record for checkpoint size 2 accepted")
	}
	in.Records = append(in.Records, []byte("{}"))
	in.Origin = "edgeseal/site2/dev1"
	if _, err := bundle.Seal(ctx, in); err == nil {
		t.Error("origin mismatch accepted")
	}
	in.Origin = ""
	in.Signer = nil
	if _, err := bundle.Seal(ctx, in); err == nil {
		t.Error("no signer accepted")
	}
}

func TestVerifyWithoutTrustOrFiles(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	r := verify.Verify(c.Bundles[0], nil, nil)
	if r.OK() || r.State != nil {
		t.Fatal("verified without trust material")
	}
	if ck, _ := r.Get(verify.CheckKeysTrusted); ck.OK {
		t.Error("keys.trusted passed without trust")
	}
	if ck, _ := r.Get(verify.CheckMerkleRoot); !ck.OK {
		t.Errorf("merkle.root should not depend on trust: %s", ck.Detail)
	}
	// A bundle without its seal: every check is still reported by name.
	b := bundletest.Clone(c.Bundles[0])
	delete(b.Files, bundle.PathSeal)
	r = verify.Verify(b, c.Trust, nil)
	if len(r.Checks) != len(verify.CheckNames) {
		t.Fatalf("%d checks reported", len(r.Checks))
	}
	if ck, _ := r.Get(verify.CheckMerkleRoot); ck.OK || !ck.Skipped {
		t.Errorf("merkle.root without statement: %+v", ck)
	}
	if ck, _ := r.Get(verify.CheckPayloadsDigest); !ck.OK {
		t.Errorf("payloads.digest does not need the seal: %+v", ck)
	}
	if r := verify.Verify(nil, c.Trust, nil); r.OK() {
		t.Error("nil bundle verified")
	}
}

func TestStateRoundTrip(t *testing.T) {
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	s := c.States[1]
	raw, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := verify.ParseState(raw)
	if err != nil {
		t.Fatal(err)
	}
	if *back != *s {
		t.Errorf("state %+v, want %+v", back, s)
	}
	cp, _ := merkle.ParseCheckpoint([]byte(s.Checkpoint))
	if cp.Size != 16 || s.Counter != 2 {
		t.Errorf("state after two bundles of 8: size %d counter %d", cp.Size, s.Counter)
	}
	if _, err := verify.ParseState(bytes.Replace(raw, []byte(`"counter"`), []byte(`"Counter"`), 1)); err == nil {
		t.Error("renamed field accepted")
	}
}

func TestTrust(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trustfile.ParseTrust(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := verify.Verify(c.Bundles[0], tr, nil); !r.OK() {
		t.Fatalf("parsed trust:\n%s", r)
	}
	other, err := bundletest.NewSoft()
	if err != nil {
		t.Fatal(err)
	}
	other.Extend(0, []byte("other firmware"))
	other.Bound = maps.Clone(other.Values)
	oid := other.Identity()
	mut := map[string]func(id *custody.Identity){
		"key id":        func(id *custody.Identity) { id.KeyID = oid.KeyID },
		"policy":        func(id *custody.Identity) { id.PolicyDigest = oid.PolicyDigest },
		"certification": func(id *custody.Identity) { id.Certify = oid.Certify },
		"ak":            func(id *custody.Identity) { id.AKPublic = oid.AKPublic },
		"pcr values":    func(id *custody.Identity) { id.PCRValues = map[int][]byte{0: make([]byte, 32)} },
		"ek":            func(id *custody.Identity) { id.EKPublic = []byte("nope") },
	}
	for name, m := range mut {
		id := c.Identity
		m(&id)
		if _, err := trustfile.NewTrust("site1", "dev1", id); err == nil {
			t.Errorf("%s: inconsistent identity accepted", name)
		}
	}
	if _, err := trustfile.NewTrust("site 1", "dev1", c.Identity); err == nil {
		t.Error("bad site accepted")
	}
	if _, err := trustfile.ParseTrust(bytes.Replace(raw, []byte(`"version": 1`), []byte(`"version": 2`), 1)); err == nil {
		t.Error("version 2 accepted")
	}
	// The trust of another device does not verify this one's bundles.
	ot, err := trustfile.NewTrust("site1", "dev1", oid)
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Verify(c.Bundles[0], ot, nil)
	for _, name := range []string{verify.CheckKeysTrusted, verify.CheckKeysPolicy, verify.CheckQuotePCRs} {
		if ck, _ := r.Get(name); ck.OK {
			t.Errorf("%s passed under another device's trust", name)
		}
	}
}

// A Trust written as a literal (not via NewTrust/ParseTrust) is checked on
// use and may be shared by concurrent verifications.
func TestTrustLiteralConcurrent(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	lit := *c.Trust
	lit2 := trustfile.Trust{
		Version: lit.Version, Site: lit.Site, Device: lit.Device, Origin: lit.Origin,
		EKPublic: lit.EKPublic, AKPublic: lit.AKPublic, SigningPublic: lit.SigningPublic,
		Certification: lit.Certification, PCRSelection: lit.PCRSelection, GoldenPCRs: lit.GoldenPCRs,
		PolicyDigest: lit.PolicyDigest, KeyID: lit.KeyID,
	}
	done := make(chan bool)
	for range 4 {
		go func() { done <- verify.Verify(c.Bundles[0], &lit2, nil).OK() }()
	}
	for range 4 {
		if !<-done {
			t.Error("literal trust did not verify")
		}
	}
	lit2.KeyID = "sha256:" + strings.Repeat("0", 64)
	r := verify.Verify(c.Bundles[0], &lit2, nil)
	if ck, _ := r.Get(verify.CheckKeysTrusted); ck.OK {
		t.Error("inconsistent literal trust accepted")
	}
}

// The quote clock rule: a clock that did not advance passes only across a
// reset or restart (the TPM may resume from the clock it saved).
func TestQuoteClockAfterPowerLoss(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		back, reset   bool
		safe, restart bool
		ok            bool
	}{
		{"advancing", false, false, true, false, true},
		{"advancing unsafe", false, false, false, false, true},
		{"back, no reboot", true, false, true, false, false},
		{"back, unsafe, no reboot", true, false, false, false, false},
		{"back, reboot, safe", true, true, true, false, true},
		{"back, reboot, unsafe", true, true, false, false, true},
		{"back, restart, unsafe", true, false, false, true, true},
	} {
		dev, err := bundletest.NewSoft()
		if err != nil {
			t.Fatal(err)
		}
		ch, err := bundletest.NewChain(ctx, dev, 1, bundletest.Options{Records: 3})
		if err != nil {
			t.Fatal(err)
		}
		if c.back {
			dev.Clock -= 50 * dev.ClockStep
		}
		if c.reset {
			dev.ResetCount++
		}
		if c.restart {
			dev.RestartCount++
		}
		dev.Safe = c.safe
		b, err := ch.Next(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		r := verify.Verify(b, ch.Trust, ch.States[0])
		if ck, _ := r.Get(verify.CheckQuoteClock); ck.OK != c.ok {
			t.Errorf("%s: quote.clock ok=%v (%s), want %v", c.name, ck.OK, ck.Detail, c.ok)
		}
	}
}
