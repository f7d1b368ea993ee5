package custody_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// keyVectors is testdata/keys/vectors.json: canonical key records of one
// device (a key.create, then a rotation: key.rotate and key.revoke), the
// AK that certified the keys, and bodies that must be refused with the
// reason they name.
type keyVectors struct {
	AKPublic []byte          `json:"akPublic"` // TPMT_PUBLIC
	Records  []string        `json:"records"`  // canonical records, in journal order
	Invalid  []invalidVector `json:"invalid"`
}

type invalidVector struct {
	Type  string `json:"type"`
	Body  string `json:"body"`  // the body's bytes
	Error string `json:"error"` // in the parse error
}

var keyVectorsPath = filepath.Join("testdata", "keys", "vectors.json")

func TestKeyVectors(t *testing.T) {
	if *updateKeys {
		writeKeyVectors(t)
	}
	raw, err := os.ReadFile(keyVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v keyVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	ak, err := attest.ParsePublic(v.AKPublic)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Records) != 3 {
		t.Fatalf("%d records", len(v.Records))
	}
	var recs []*custody.Record
	for i, line := range v.Records {
		r, err := custody.ParseRecord([]byte(line))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if again, err := r.Marshal(); err != nil || !bytes.Equal(again, []byte(line)) {
			t.Fatalf("record %d does not round-trip: %v", i, err)
		}
		recs = append(recs, r)
	}
	create, err := custody.ParseKeyCreateBody(recs[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := attest.ParsePublic(create.Public)
	if err := attest.VerifyCertify(ak, create.Certification.Attest, create.Certification.Signature, pub); err != nil {
		t.Fatalf("key.create certification: %v", err)
	}
	if create.AKID != custody.KeyID(v.AKPublic) || create.KeyID != custody.KeyID(create.Public) {
		t.Fatal("key.create ids")
	}
	body, st, err := custody.ParseKeyRotateBody(recs[1].Body)
	if err != nil {
		t.Fatal(err)
	}
	if body.OldKeyID != create.KeyID || st.Device != recs[1].Device {
		t.Fatalf("key.rotate: %+v", body)
	}
	if err := body.Statement.VerifyECDSA(create.KeyID, pub.Key); err != nil {
		t.Fatalf("rotation statement under the old key: %v", err)
	}
	npub, _ := attest.ParsePublic(st.NewPublic)
	if err := attest.VerifyCertify(ak, st.NewCertification.Attest, st.NewCertification.Signature, npub); err != nil {
		t.Fatalf("new key certification: %v", err)
	}
	if err := body.Statement.VerifyECDSA(create.KeyID, npub.Key); err == nil {
		t.Fatal("statement verifies under the new key")
	}
	rev, err := custody.ParseKeyRevokeBody(recs[2].Body)
	if err != nil || rev.KeyID != create.KeyID || rev.Reason != custody.KeyRevokeRotated {
		t.Fatalf("key.revoke %+v: %v", rev, err)
	}
	if len(v.Invalid) < 8 {
		t.Fatalf("only %d invalid vectors", len(v.Invalid))
	}
	for _, iv := range v.Invalid {
		var err error
		switch iv.Type {
		case custody.TypeKeyCreate:
			_, err = custody.ParseKeyCreateBody([]byte(iv.Body))
		case custody.TypeKeyRotate:
			_, _, err = custody.ParseKeyRotateBody([]byte(iv.Body))
		case custody.TypeKeyRevoke:
			_, err = custody.ParseKeyRevokeBody([]byte(iv.Body))
		}
		if err == nil || !strings.Contains(err.Error(), iv.Error) {
			t.Errorf("%s %s: err %v, want %q", iv.Type, iv.Body, err, iv.Error)
		}
		var fe *wire.FormatError
		var nc *wire.NotCanonicalError
		if err != nil && !errors.As(err, &fe) && !errors.As(err, &nc) && !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("%s: error of type %T", iv.Type, err)
		}
	}
}

// writeKeyVectors makes fresh vectors from a software device.
func writeKeyVectors(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 2, KeyCreate: true})
	if err := c.Rotate(context.Background(), bundletest.RotateOptions{Reason: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	b, r := sealNext(t, c, 2)
	if !r.OK() {
		t.Fatalf("%s", r)
	}
	raw0, _ := c.Bundles[0].Records()
	raw1, _ := b.Records()
	v := keyVectors{AKPublic: c.Identity.AKPublic, Records: []string{string(raw0[1]), string(raw1[0]), string(raw1[1])}}
	rec := func(i int) []byte {
		r, err := custody.ParseRecord([]byte(v.Records[i]))
		if err != nil {
			t.Fatal(err)
		}
		return r.Body
	}
	edit := func(typ string, body []byte, errText string, fn func(m map[string]any)) {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		out, err := json.Marshal(m) // sorted keys: canonical for these bodies
		if err != nil {
			t.Fatal(err)
		}
		v.Invalid = append(v.Invalid, invalidVector{Type: typ, Body: string(out), Error: errText})
	}
	create, rotate, revoke := rec(0), rec(1), rec(2)
	edit(custody.TypeKeyCreate, create, "version 2", func(m map[string]any) { m["v"] = 2 })
	edit(custody.TypeKeyCreate, create, "unknown field", func(m map[string]any) { m["extra"] = 1 })
	edit(custody.TypeKeyCreate, create, "does not name the public area", func(m map[string]any) {
		m["keyId"] = "sha256:" + strings.Repeat("00", 32)
	})
	edit(custody.TypeKeyCreate, create, "pcrs", func(m map[string]any) { m["pcrs"] = []int{7, 0} })
	edit(custody.TypeKeyCreate, create, "policyDigest is not the key's authPolicy", func(m map[string]any) { m["policyDigest"] = "AAAA" })
	edit(custody.TypeKeyCreate, create, "certification is not a TPM2_Certify of the key", func(m map[string]any) {
		var other map[string]any
		_ = json.Unmarshal(rotate, &other)
		var st map[string]any
		p, _ := other["statement"].(map[string]any)["payload"].(string)
		dec, _ := base64.StdEncoding.DecodeString(p)
		_ = json.Unmarshal(dec, &st)
		m["certification"] = st["newCertification"]
	})
	edit(custody.TypeKeyRotate, rotate, "exactly one signature by the old key", func(m map[string]any) {
		m["oldKeyId"] = "sha256:" + strings.Repeat("11", 32)
	})
	edit(custody.TypeKeyRotate, rotate, "differ from the signed statement", func(m map[string]any) { m["reason"] = "other" })
	edit(custody.TypeKeyRotate, rotate, "statement is not a", func(m map[string]any) {
		m["statement"].(map[string]any)["payloadType"] = "application/vnd.in-toto+json"
	})
	edit(custody.TypeKeyRevoke, revoke, "reason must be", func(m map[string]any) { m["reason"] = "" })
	edit(custody.TypeKeyRevoke, revoke, "control character", func(m map[string]any) { m["reason"] = "a\u0007b" })
	edit(custody.TypeKeyRevoke, revoke, "keyId", func(m map[string]any) { m["keyId"] = "md5:00" })
	v.Invalid = append(v.Invalid, invalidVector{Type: custody.TypeKeyRevoke, Body: `{"keyId":"sha256:` + strings.Repeat("ab", 32) + `", "reason":"r","v":1}`, Error: "not canonical"})
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyVectorsPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
