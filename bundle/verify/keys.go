package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// The signing-key chain (check keys.chain). A device starts with the
// signing key of its trust file; key records, applied in record order,
// change which key is in force: a key.rotate whose statement verifies
// under the key in force and whose new key the trusted AK certified (a
// TPM-resident unrestricted signing key with the same authPolicy) puts
// the new key in force, for the seal of the very bundle that holds the
// record too, and retires the old key for good; a key.revoke retires a
// key. The key in force is then the only one keys.trusted accepts for the
// seal. State.Keys carries the result to the device's next bundle.

// MaxRevokedKeys bounds the revoked key ids a State carries.
const MaxRevokedKeys = 1024

// KeyState is the signing-key chain of a device after a bundle.
type KeyState struct {
	AKID    string   `json:"akId"`              // KeyID of the AK the chain is certified by
	Current KeyInfo  `json:"current"`           // the key in force
	Revoked []string `json:"revoked,omitempty"` // key ids revoked, in record order
}

// KeyInfo is a signing key and the record that put it in force.
type KeyInfo struct {
	KeyID         string          `json:"keyId"`
	Public        []byte          `json:"public"` // TPMT_PUBLIC
	Certification custody.KeyCert `json:"certification"`
	Seq           uint64          `json:"seq"`            // key.create or key.rotate record; 0 with Time ""
	Time          string          `json:"time,omitempty"` // its time; "" while only the trust file names the key
}

// KeyEvent is one key record of a verified bundle, for the key history
// `edgeseal verify` prints.
type KeyEvent struct {
	Event    string `json:"event"` // "created", "rotated", "revoked", "recovered"
	Seq      uint64 `json:"seq"`
	Time     string `json:"time"`
	KeyID    string `json:"keyId"`              // the key created, the new key, the key revoked, the key after a recovery
	OldKeyID string `json:"oldKeyId,omitempty"` // rotated, recovered: the key it replaced
	Reason   string `json:"reason,omitempty"`   // recovered: the case, "reseal" or "new-tpm"
	// EarlierTPM marks a record of a key certified by another AK than the
	// trusted one: history of the device's earlier TPM, journaled before
	// a TPM clear or board swap and sealed again under the new key. It
	// changes nothing in the chain.
	EarlierTPM bool `json:"earlierTpm,omitempty"`
}

// IsRevoked reports whether id was revoked in the chain.
func (k *KeyState) IsRevoked(id string) bool { return k != nil && slices.Contains(k.Revoked, id) }

// check validates a KeyState read from outside (ParseState).
func (k *KeyState) check() error {
	bad := func(reason string, args ...any) error { return wire.FormatErr("state", "keys: "+reason, args...) }
	if _, err := wire.ParseHash(k.AKID); err != nil {
		return bad("akId: %v", err)
	}
	pub, err := custody.CheckKeyPublic("state", k.Current.KeyID, k.Current.Public)
	if err != nil {
		return err
	}
	if err := custody.CheckKeyCert("state", k.Current.Certification, pub); err != nil {
		return err
	}
	if k.Current.Time != "" {
		if _, err := wire.ParseTime(k.Current.Time); err != nil {
			return err
		}
	} else if k.Current.Seq != 0 {
		return bad("current key has a seq but no time")
	}
	if len(k.Revoked) > MaxRevokedKeys {
		return bad("%d revoked keys, at most %d", len(k.Revoked), MaxRevokedKeys)
	}
	for _, id := range k.Revoked {
		if _, err := wire.ParseHash(id); err != nil {
			return bad("revoked: %v", err)
		}
	}
	return nil
}

// keychain is the verifier's view of the signing-key chain.
type keychain struct {
	started bool
	akID    string
	cur     KeyInfo
	curPub  *attest.Public
	revoked []string
	events  []KeyEvent
	changed bool // a key record was applied, or the previous state had keys
}

// keysStart takes the chain from the previous state when it is certified
// by the trusted AK, else from the trust file. When the trust file names a
// key the chain neither has in force nor retired, an operator approved
// that key since (a new enrollment): it is in force, the chain's revoked
// keys stay revoked.
func (v *verifier) keysStart() {
	kc := &v.kc
	if kc.started || v.t == nil || v.trustErr != nil {
		return
	}
	kc.started = true
	kc.akID = custody.KeyID(v.t.AKPublic)
	kc.cur = KeyInfo{KeyID: v.t.KeyID, Public: v.t.SigningPublic,
		Certification: custody.KeyCert{Attest: v.t.Certification.Attest, Signature: v.t.Certification.Signature}}
	if p := v.prev; p != nil && p.Keys != nil && p.Keys.AKID == kc.akID {
		kc.revoked = slices.Clone(p.Keys.Revoked)
		kc.changed = true
		if p.Keys.Current.KeyID == v.t.KeyID || slices.Contains(p.Keys.Revoked, v.t.KeyID) {
			kc.cur = p.Keys.Current
		}
	}
	kc.curPub, _ = attest.ParsePublic(kc.cur.Public)
}

// keysChain applies the bundle's key records in record order.
func (v *verifier) keysChain() error {
	if err := v.needTrust(); err != nil {
		return err
	}
	v.keysStart()
	if err := v.needRecords(); err != nil {
		return err
	}
	if v.kc.curPub == nil {
		return errors.New("the key in force does not parse")
	}
	for _, r := range v.recs {
		var err error
		switch r.Type {
		case custody.TypeKeyCreate:
			err = v.keyCreate(r)
		case custody.TypeKeyRotate:
			err = v.keyRotate(r)
		case custody.TypeKeyRevoke:
			err = v.keyRevoke(r)
		case custody.TypeKeyRecover:
			v.keyRecover(r)
			continue // history only: the chain's keys are the key records'
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("record %d (%s): %w", r.Seq, r.Type, err)
		}
		v.kc.changed = true
	}
	if n := len(v.kc.events); n > 0 {
		v.note = fmt.Sprintf("%d key records; key in force %s", n, v.kc.cur.KeyID)
	}
	return nil
}

func (v *verifier) keyCreate(r *custody.Record) error {
	k, err := custody.ParseKeyCreateBody(r.Body)
	if err != nil {
		return err
	}
	kc := &v.kc
	if k.AKID != kc.akID {
		if k.KeyID == kc.cur.KeyID {
			return fmt.Errorf("key %s is certified by AK %s, the trusted AK is %s", k.KeyID, k.AKID, kc.akID)
		}
		kc.events = append(kc.events, KeyEvent{Event: "created", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: k.KeyID, EarlierTPM: true})
		return nil
	}
	pub, _ := attest.ParsePublic(k.Public) // parsed by ParseKeyCreateBody
	if err := attest.VerifyCertify(v.t.AK(), k.Certification.Attest, k.Certification.Signature, pub); err != nil {
		return fmt.Errorf("key %s is not certified by the trusted AK: %w", k.KeyID, err)
	}
	if slices.Contains(kc.revoked, k.KeyID) {
		return fmt.Errorf("key %s was revoked", k.KeyID)
	}
	if k.KeyID == kc.cur.KeyID && kc.cur.Time == "" {
		kc.cur.Seq, kc.cur.Time = r.Seq, wire.FormatTime(r.Time)
	}
	kc.events = append(kc.events, KeyEvent{Event: "created", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: k.KeyID})
	return nil
}

func (v *verifier) keyRotate(r *custody.Record) error {
	body, st, err := custody.ParseKeyRotateBody(r.Body)
	if err != nil {
		return err
	}
	kc := &v.kc
	if st.AKID != kc.akID && st.OldKeyID != kc.cur.KeyID && body.OldKeyID != kc.cur.KeyID {
		// A rotation of an earlier TPM's keys (see KeyEvent.EarlierTPM).
		kc.events = append(kc.events, KeyEvent{Event: "rotated", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: st.NewKeyID,
			OldKeyID: st.OldKeyID, Reason: st.Reason, EarlierTPM: true})
		return nil
	}
	switch {
	case st.Device != v.t.DeviceName():
		return fmt.Errorf("rotation statement of device %s, not %s", st.Device, v.t.DeviceName())
	case st.OldKeyID != kc.cur.KeyID:
		return fmt.Errorf("rotation from key %s, the key in force is %s", st.OldKeyID, kc.cur.KeyID)
	}
	if err := body.Statement.VerifyECDSA(kc.cur.KeyID, kc.curPub.Key); err != nil {
		return fmt.Errorf("rotation statement is not signed by the key in force %s: %w", kc.cur.KeyID, err)
	}
	if st.AKID != kc.akID {
		return fmt.Errorf("new key %s is certified by AK %s, the trusted AK is %s", st.NewKeyID, st.AKID, kc.akID)
	}
	pub, _ := attest.ParsePublic(st.NewPublic) // parsed by ParseKeyRotateBody
	if err := attest.VerifyCertify(v.t.AK(), st.NewCertification.Attest, st.NewCertification.Signature, pub); err != nil {
		return fmt.Errorf("new key %s is not certified by the trusted AK: %w", st.NewKeyID, err)
	}
	if err := signingKeyAttributes(pub); err != nil {
		return fmt.Errorf("new key %s: %w", st.NewKeyID, err)
	}
	if !bytes.Equal(pub.AuthPolicy, kc.curPub.AuthPolicy) {
		return fmt.Errorf("new key %s has policy %x, the key in force %x", st.NewKeyID, pub.AuthPolicy, kc.curPub.AuthPolicy)
	}
	if slices.Contains(kc.revoked, st.NewKeyID) {
		return fmt.Errorf("new key %s was revoked", st.NewKeyID)
	}
	if t, _ := wire.ParseTime(st.Time); t.After(r.Time) {
		return fmt.Errorf("rotation statement time %s after its record's %s", st.Time, wire.FormatTime(r.Time))
	}
	// A key rotated away is retired for good, with or without its key.revoke.
	if !slices.Contains(kc.revoked, st.OldKeyID) {
		if len(kc.revoked) >= MaxRevokedKeys {
			return fmt.Errorf("more than %d revoked keys", MaxRevokedKeys)
		}
		kc.revoked = append(kc.revoked, st.OldKeyID)
	}
	kc.events = append(kc.events, KeyEvent{Event: "rotated", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: st.NewKeyID,
		OldKeyID: st.OldKeyID, Reason: st.Reason})
	kc.cur = KeyInfo{KeyID: st.NewKeyID, Public: st.NewPublic, Certification: st.NewCertification, Seq: r.Seq, Time: wire.FormatTime(r.Time)}
	kc.curPub = pub
	return nil
}

func (v *verifier) keyRevoke(r *custody.Record) error {
	k, err := custody.ParseKeyRevokeBody(r.Body)
	if err != nil {
		return err
	}
	kc := &v.kc
	if !slices.Contains(kc.revoked, k.KeyID) {
		if len(kc.revoked) >= MaxRevokedKeys {
			return fmt.Errorf("more than %d revoked keys", MaxRevokedKeys)
		}
		kc.revoked = append(kc.revoked, k.KeyID)
	}
	kc.events = append(kc.events, KeyEvent{Event: "revoked", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: k.KeyID, Reason: k.Reason})
	return nil
}

// signingKeyAttributes requires a TPM-resident unrestricted signing key
// usable only through its policy (what keys.attributes requires of the
// sealing key).
func signingKeyAttributes(s *attest.Public) error {
	switch {
	case s.Restricted || !s.SignEncrypt || s.Decrypt || !s.FixedTPM || !s.FixedParent || !s.SensitiveDataOrigin:
		return errors.New("not a TPM-resident unrestricted signing key")
	case s.UserWithAuth:
		return errors.New("usable by password (userWithAuth)")
	case len(s.AuthPolicy) == 0:
		return errors.New("no authPolicy")
	}
	return nil
}

// inForce is the public area of the key the seal must be made with.
func (v *verifier) inForce() []byte {
	v.keysStart()
	if !v.kc.started {
		return v.t.SigningPublic
	}
	return v.kc.cur.Public
}

// sealKeyProblem says what is wrong with the key the statement names, ""
// when it is the key in force.
func (v *verifier) sealKeyProblem() string {
	if v.pred == nil {
		return ""
	}
	v.keysStart()
	want := v.t.KeyID
	if v.kc.started {
		want = v.kc.cur.KeyID
	}
	switch id := v.pred.KeyID; {
	case id == want && slices.Contains(v.kc.revoked, id):
		return fmt.Sprintf("sealed by key %.80s, which was revoked", id)
	case id == want:
		return ""
	case slices.Contains(v.kc.revoked, id):
		return fmt.Sprintf("sealed by key %.80s, which was revoked; the key in force is %s", id, want)
	default:
		return fmt.Sprintf("sealed by key %.80s, the key in force is %s", id, want)
	}
}

// keysState is State.Keys after the bundle: nil while neither the
// previous state nor any record named a key.
func (v *verifier) keysState() *KeyState {
	kc := &v.kc
	if !kc.started || !kc.changed {
		return nil
	}
	return &KeyState{AKID: kc.akID, Current: kc.cur, Revoked: slices.Clone(kc.revoked)}
}

// keyRecoverBody is what the key history takes of a key.recover body
// (docs/formats.md, custody records).
type keyRecoverBody struct {
	Case          string `json:"case"`
	KeyID         string `json:"keyId"`
	PreviousKeyID string `json:"previousKeyId"`
}

// keyRecover adds a key.recover record to the key history: the data key
// recovered from the operator's wrap, the signing key in force from then
// on and the one before. It checks nothing (the record is sealed like any
// other; the key records carry the keys); a body that does not decode is
// listed with what it has.
func (v *verifier) keyRecover(r *custody.Record) {
	var b keyRecoverBody
	_ = json.Unmarshal(r.Body, &b)
	v.kc.events = append(v.kc.events, KeyEvent{Event: "recovered", Seq: r.Seq, Time: wire.FormatTime(r.Time), KeyID: b.KeyID,
		OldKeyID: b.PreviousKeyID, Reason: b.Case})
}
