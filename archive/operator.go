package archive

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Signed operator statements. An operator's action at the archive (a
// legal hold set or released, a purge) is a statement signed with the
// operator's Ed25519 key and appended to the archive log, the same log as
// the bundles' receipt entries and the rekey statements (EpochStatement):
// a log reader tells them apart by "type". The archive accepts a
// statement only when its key is one of the operator keys of its
// configuration (Options.OperatorKeys); an auditor checks the signature
// against the key named in the statement and the key against the
// operators the archive's owner published.

// Operator statement types (beside StatementRekey).
const (
	StatementHoldSet     = "hold.set"
	StatementHoldRelease = "hold.release"
	StatementPurge       = "retention.purge"
	// maxStatementObjects bounds the objects one statement names.
	maxStatementObjects = 100000
	// MaxOperatorStatementSize bounds a signed operator statement.
	MaxOperatorStatementSize = 16 << 20
)

// HoldTarget names what a legal hold covers: exactly one of a device's
// bundles, the bundles holding one export, or one bundle.
type HoldTarget struct {
	Device string `json:"device,omitempty"` // "<site>/<name>"
	Export string `json:"export,omitempty"` // an export id
	Bundle string `json:"bundle,omitempty"` // "sha256:.."
}

// PurgedObject is one bundle a purge statement deletes the payload bytes
// of: the stored bundle is replaced by its skeleton (the same tar without
// data/payloads/*), see docs/formats.md "Retention and purge".
type PurgedObject struct {
	Bundle      string   `json:"bundle"`      // "sha256:.." of the bundle as accepted (the receipt's)
	Skeleton    string   `json:"skeleton"`    // "sha256:.." of the stored skeleton
	Payloads    []string `json:"payloads"`    // "sha256:.." of the payload files deleted
	Class       string   `json:"class"`       // the longest retention class of its records
	RetainUntil string   `json:"retainUntil"` // wire.TimeLayout
}

// OperatorStatement is a signed operator action, its canonical JSON (JCS,
// "sig" included) the archive log leaf. Sig is the Ed25519 signature of
// the canonical JSON of the statement without "sig"; Key names the
// operator key (KeyID of its public key) and Operator is its public key.
//
//	{"by":"alice","case":"C-1","key":"sha256:…","objects":["sha256:…"],"operator":"<base64>",
//	 "sig":"<base64>","target":{"device":"site1/dev1"},"time":"…","type":"hold.set","v":1}
type OperatorStatement struct {
	V      int    `json:"v"`    // StatementVersion
	Type   string `json:"type"` // StatementHoldSet, StatementHoldRelease, StatementPurge
	By     string `json:"by"`   // the operator's name
	Time   string `json:"time"` // wire.TimeLayout
	Reason string `json:"reason,omitempty"`
	// Hold statements.
	Case    string      `json:"case,omitempty"`
	Target  *HoldTarget `json:"target,omitempty"`
	Objects []string    `json:"objects,omitempty"` // the bundles "sha256:.." the hold covers
	// Purge statements.
	Purged []PurgedObject `json:"purged,omitempty"`
	// Device statements (operator_device.go): the device, the key
	// approved or revoked (for device.revoke the key approved then, if
	// any), the "sha256:.." of the approved DEVICE.json and that
	// DEVICE.json itself (compacted JSON, base64; statements of earlier
	// versions carry only its digest), and whether a request whose
	// credential was not activated is approved.
	Device       string `json:"device,omitempty"`
	KeyID        string `json:"keyId,omitempty"`
	TrustDigest  string `json:"trust,omitempty"`
	TrustFile    []byte `json:"trustFile,omitempty"`
	NoActivation bool   `json:"noActivation,omitempty"`
	// OperatorSignature: key, operator, sig (required here).
	OperatorSignature
}

// OperatorSignature is an operator's Ed25519 signature of a statement,
// the same for every operator statement (a rekey statement carries it
// when an operator key signed the rekey): Sig signs the canonical JSON of
// the statement without "sig", Key is the KeyID of Operator.
type OperatorSignature struct {
	Key      string            `json:"key,omitempty"`      // "sha256:.." of Operator
	Operator ed25519.PublicKey `json:"operator,omitempty"` // base64, 32 bytes
	Sig      []byte            `json:"sig,omitempty"`      // base64
}

// Signed reports whether the statement carries an operator signature.
func (o *OperatorSignature) Signed() bool { return o.Key != "" || o.Operator != nil || o.Sig != nil }

// sign fills o from key and signs the canonical JSON of stmt (which
// embeds o) without sig.
func (o *OperatorSignature) sign(stmt any, key crypto.Signer) error {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return stmtErr("operator key is not Ed25519", nil)
	}
	o.Key, o.Operator, o.Sig = KeyID(pub), pub, nil
	payload, err := canonical(stmt)
	if err != nil {
		return err
	}
	if o.Sig, err = key.Sign(rand.Reader, payload, crypto.Hash(0)); err != nil {
		return fmt.Errorf("archive: sign statement: %w", err)
	}
	return nil
}

// verify checks o: Key the id of Operator, Sig its signature of the
// canonical JSON of stmt (which embeds o) without sig.
func (o *OperatorSignature) verify(stmt any) error {
	if len(o.Operator) != ed25519.PublicKeySize || o.Key != KeyID(o.Operator) {
		return stmtErr("key is not the id of the operator's public key", nil)
	}
	sig := o.Sig
	o.Sig = nil
	payload, err := canonical(stmt)
	o.Sig = sig
	if err != nil {
		return err
	}
	if !ed25519.Verify(o.Operator, payload, sig) {
		return stmtErr("signature does not verify with key "+o.Key, nil)
	}
	return nil
}

// SignedPayload returns the bytes Sig signs: the canonical JSON of the
// statement without sig.
func (s *OperatorStatement) SignedPayload() ([]byte, error) {
	c := *s
	c.Sig = nil
	return canonical(&c)
}

// Marshal returns the canonical JSON of the statement (the log record).
func (s *OperatorStatement) Marshal() ([]byte, error) { return canonical(s) }

func canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("archive: statement: %w", err)
	}
	b, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("archive: statement: %w", err)
	}
	return b, nil
}

// SignOperatorStatement fills Key and Operator from key, checks the
// statement and signs it; it returns the log record.
func SignOperatorStatement(s *OperatorStatement, key crypto.Signer) ([]byte, error) {
	s.V = StatementVersion
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := s.sign(s, key); err != nil {
		return nil, err
	}
	return s.Marshal()
}

// ParseOperatorStatement reads a signed operator statement strictly:
// bounded size, known members, version 1, a known type, canonical JSON,
// the fields of its type well formed, Key the id of Operator and Sig its
// valid signature. Whether Operator is one of the archive's operators is
// the caller's check (Archive: Options.OperatorKeys).
func ParseOperatorStatement(b []byte) (*OperatorStatement, error) {
	if len(b) > MaxOperatorStatementSize {
		return nil, fmt.Errorf("archive: statement of %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	var s OperatorStatement
	if err := decodeStatement(b, &s); err != nil {
		return nil, err
	}
	if s.V != StatementVersion {
		return nil, stmtErr(fmt.Sprintf("version %d", s.V), nil)
	}
	if canon, err := s.Marshal(); err != nil || !bytes.Equal(canon, b) {
		return nil, stmtErr("not canonical JSON", err)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := s.verify(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// check validates the statement's fields for its type (not the
// signature).
func (s *OperatorStatement) check() error {
	if len(s.By) == 0 || len(s.By) > maxOperatorText || !utf8.ValidString(s.By) {
		return stmtErr("by is empty, longer than 1024 bytes or not UTF-8", nil)
	}
	if len(s.Reason) > maxOperatorText || !utf8.ValidString(s.Reason) {
		return stmtErr("reason longer than 1024 bytes or not UTF-8", nil)
	}
	if _, err := wire.ParseTime(s.Time); err != nil {
		return err
	}
	if isDeviceStatement(s.Type) {
		return s.checkDevice()
	}
	if s.Device != "" || s.KeyID != "" || s.TrustDigest != "" || s.TrustFile != nil || s.NoActivation {
		return stmtErr("a hold or purge statement names a device, key or trust", nil)
	}
	switch s.Type {
	case StatementHoldSet, StatementHoldRelease:
		if len(s.Case) == 0 || len(s.Case) > maxOperatorText || !utf8.ValidString(s.Case) {
			return stmtErr("case is empty, longer than 1024 bytes or not UTF-8", nil)
		}
		if err := s.Target.check(); err != nil {
			return err
		}
		if s.Purged != nil {
			return stmtErr("a hold statement names purged objects", nil)
		}
		if len(s.Objects) == 0 && s.Target.Device == "" {
			return stmtErr("a hold statement without objects (only a device's may name none)", nil)
		}
		if s.Objects != nil && len(s.Objects) == 0 {
			return stmtErr("empty objects (absent when none)", nil)
		}
		return checkDigests(s.Objects, "objects")
	case StatementPurge:
		if s.Case != "" || s.Target != nil || s.Objects != nil {
			return stmtErr("a purge statement names a case, target or objects", nil)
		}
		if len(s.Purged) == 0 || len(s.Purged) > maxStatementObjects {
			return stmtErr(fmt.Sprintf("%d purged objects", len(s.Purged)), nil)
		}
		seen := make(map[string]bool, len(s.Purged))
		for _, p := range s.Purged {
			if seen[p.Bundle] {
				return stmtErr("bundle "+p.Bundle+" purged twice", nil)
			}
			seen[p.Bundle] = true
			for _, h := range []string{p.Bundle, p.Skeleton} {
				if _, err := wire.ParseHash(h); err != nil {
					return err
				}
			}
			if p.Bundle == p.Skeleton {
				return stmtErr("the skeleton of "+p.Bundle+" is the bundle", nil)
			}
			if err := checkClass(p.Class); err != nil {
				return err
			}
			if _, err := wire.ParseTime(p.RetainUntil); err != nil {
				return err
			}
			if p.Payloads == nil {
				return stmtErr("purged object "+p.Bundle+" without payloads", nil)
			}
			if err := checkDigests(p.Payloads, "payloads"); err != nil {
				return err
			}
		}
		return nil
	}
	return stmtErr(fmt.Sprintf("type %.40q", s.Type), nil)
}

func (t *HoldTarget) check() error {
	if t == nil {
		return stmtErr("a hold without target", nil)
	}
	n := 0
	if t.Device != "" {
		n++
		if err := wire.CheckDevice(t.Device); err != nil {
			return err
		}
	}
	if t.Export != "" {
		n++
		if len(t.Export) > maxOperatorText || !utf8.ValidString(t.Export) {
			return stmtErr("export id longer than 1024 bytes or not UTF-8", nil)
		}
	}
	if t.Bundle != "" {
		n++
		if _, err := wire.ParseHash(t.Bundle); err != nil {
			return err
		}
	}
	if n != 1 {
		return stmtErr(fmt.Sprintf("a hold target names %d of device, export, bundle (want one)", n), nil)
	}
	return nil
}

// checkDigests checks a sorted list of distinct "sha256:.." digests.
func checkDigests(l []string, what string) error {
	if len(l) > maxStatementObjects {
		return stmtErr(fmt.Sprintf("%d %s", len(l), what), nil)
	}
	for _, h := range l {
		if _, err := wire.ParseHash(h); err != nil {
			return err
		}
	}
	if !slices.IsSorted(l) || len(slices.Compact(slices.Clone(l))) != len(l) {
		return stmtErr(what+" not sorted or repeated", nil)
	}
	return nil
}

// checkClass checks a retention class name: 1 to 64 bytes of [A-Za-z0-9._-].
func checkClass(c string) error {
	if len(c) == 0 || len(c) > 64 {
		return stmtErr(fmt.Sprintf("retention class %.80q: 1 to 64 bytes", c), nil)
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return stmtErr(fmt.Sprintf("retention class %.80q: only letters, digits, '.', '_', '-'", c), nil)
		}
	}
	return nil
}
