package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Epochs. A device's history at the archive is a sequence of epochs, each
// one chain of bundles under one signing key, starting at checkpoint size
// 0. Epoch 1 begins with the device's approval; an operator's rekey
// (Archive.Rekey, `edgeseal archive devices rekey`) closes the current
// epoch at its last accepted checkpoint and opens the next one under the
// device's new key, after a TPM clear, a board swap or a lost disk. The
// rekey is an operator statement (EpochStatement) appended to the
// archive log beside the bundles' receipt entries; docs/epochs.md
// describes both.

// Operator statement constants.
const (
	// StatementVersion is the operator statement version written and read.
	StatementVersion = 1
	// StatementRekey is the type of the statement that opens a new epoch.
	StatementRekey = "device.rekey"
	// MaxStatementSize bounds an operator statement (it carries the new
	// epoch's DEVICE.json, base64).
	MaxStatementSize = trustfile.MaxTrustSize*4/3 + 8<<10
	// maxOperatorText bounds the statement's by and reason.
	maxOperatorText = 1024
)

// EpochStatement is the archive log record of a rekey: who closed which
// epoch of a device at which checkpoint, and the key and trust material
// of the epoch it opened. Its canonical JSON (JCS) is the log leaf.
//
//	{"by":"alice","closed":{…},"device":"site1/dev1","epoch":2,"keyId":"sha256:…",
//	 "reason":"board replaced","time":"…","trust":"<base64 DEVICE.json>","type":"device.rekey","v":1}
type EpochStatement struct {
	V      int         `json:"v"`      // StatementVersion
	Type   string      `json:"type"`   // StatementRekey
	Device string      `json:"device"` // "<site>/<name>"
	Epoch  uint64      `json:"epoch"`  // the epoch opened, >= 2
	KeyID  string      `json:"keyId"`  // its signing key
	Trust  []byte      `json:"trust"`  // its DEVICE.json, base64
	Closed ClosedEpoch `json:"closed"` // the epoch closed, Epoch-1
	By     string      `json:"by"`     // the operator
	Reason string      `json:"reason,omitempty"`
	Time   string      `json:"time"` // wire.TimeLayout
	// OperatorSignature, when present, is the signature of the operator
	// key that made the rekey (Archive.RekeySigned).
	OperatorSignature

	trust *trustfile.Trust
}

// ClosedEpoch summarises an epoch when it was closed: its key and its
// last accepted bundle (size 0, no root, no bundle when it accepted none).
type ClosedEpoch struct {
	Epoch          uint64 `json:"epoch"`
	KeyID          string `json:"keyId"`
	Bundles        uint64 `json:"bundles"`                  // bundles accepted in the epoch
	CheckpointSize uint64 `json:"checkpointSize"`           // of the last accepted checkpoint
	CheckpointRoot string `json:"checkpointRoot,omitempty"` // "sha256:.."
	Counter        uint64 `json:"counter"`                  // its NV counter
	Bundle         string `json:"bundle,omitempty"`         // "sha256:.." of the last accepted bundle
	LogIndex       uint64 `json:"logIndex"`                 // of that bundle's receipt entry
}

// ParsedTrust returns the new epoch's trust material checked by
// ParseEpochStatement.
func (s *EpochStatement) ParsedTrust() *trustfile.Trust { return s.trust }

// Marshal returns the canonical JSON of the statement (the log record).
func (s *EpochStatement) Marshal() ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("archive: statement: %w", err)
	}
	b, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("archive: statement: %w", err)
	}
	return b, nil
}

// ParseEpochStatement reads an operator statement strictly: bounded size,
// known fields, version 1, type device.rekey, canonical JSON, the device
// name valid, epoch = closed epoch + 1 >= 2, hashes well formed, the new
// trust a valid DEVICE.json of this device and key (trustfile.ParseTrust),
// the new key another than the closed one, by and reason valid UTF-8 of
// at most 1024 bytes, and an operator signature, when there is one,
// valid.
func ParseEpochStatement(b []byte) (*EpochStatement, error) {
	if len(b) > MaxStatementSize {
		return nil, fmt.Errorf("archive: statement of %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	var s EpochStatement
	if err := decodeStatement(b, &s); err != nil {
		return nil, err
	}
	if s.V != StatementVersion {
		return nil, stmtErr(fmt.Sprintf("version %d", s.V), nil)
	}
	if s.Type != StatementRekey {
		return nil, stmtErr(fmt.Sprintf("type %.40q", s.Type), nil)
	}
	if canon, err := s.Marshal(); err != nil || !bytes.Equal(canon, b) {
		return nil, stmtErr("not canonical JSON", err)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.Signed() {
		if err := s.OperatorSignature.verify(&s); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// check validates a statement's fields and parses its trust.
func (s *EpochStatement) check() error {
	if err := wire.CheckDevice(s.Device); err != nil {
		return err
	}
	const maxJSONInt = 1<<53 - 1
	c := &s.Closed
	switch {
	case c.Epoch < 1 || s.Epoch != c.Epoch+1 || s.Epoch > maxJSONInt:
		return stmtErr(fmt.Sprintf("epoch %d does not follow the closed epoch %d", s.Epoch, c.Epoch), nil)
	case c.Bundles > maxJSONInt || c.CheckpointSize > maxJSONInt || c.Counter > maxJSONInt || c.LogIndex > maxJSONInt:
		return stmtErr("number beyond 2^53", nil)
	case len(s.By) == 0 || len(s.By) > maxOperatorText || !utf8.ValidString(s.By):
		return stmtErr("by is empty, longer than 1024 bytes or not UTF-8", nil)
	case len(s.Reason) > maxOperatorText || !utf8.ValidString(s.Reason):
		return stmtErr("reason longer than 1024 bytes or not UTF-8", nil)
	case s.KeyID == c.KeyID:
		return stmtErr("the new epoch's key is the closed epoch's key "+c.KeyID, nil)
	}
	if _, err := wire.ParseTime(s.Time); err != nil {
		return err
	}
	for _, h := range []string{s.KeyID, c.KeyID} {
		if _, err := wire.ParseHash(h); err != nil {
			return err
		}
	}
	if c.Bundles == 0 {
		if c.CheckpointSize != 0 || c.CheckpointRoot != "" || c.Counter != 0 || c.Bundle != "" || c.LogIndex != 0 {
			return stmtErr("a closed epoch without bundles has a checkpoint", nil)
		}
	} else {
		for _, h := range []string{c.CheckpointRoot, c.Bundle} {
			if _, err := wire.ParseHash(h); err != nil {
				return err
			}
		}
	}
	t, err := trustfile.ParseTrust(s.Trust)
	if err != nil {
		return err
	}
	if t.DeviceName() != s.Device || t.KeyID != s.KeyID {
		return stmtErr("the trust is of "+t.DeviceName()+" key "+t.KeyID+", not "+s.Device+" key "+s.KeyID, nil)
	}
	s.trust = t
	return nil
}

func stmtErr(reason string, err error) error {
	return &wire.FormatError{Format: "operator statement", Reason: reason, Err: err}
}

// logRecord is one archive log record: a bundle's receipt entry, a
// rekey statement or a signed operator statement (told apart by the
// statement's "type" member, which a receipt entry never has).
type logRecord struct {
	entry *archivesig.ReceiptEntry
	stmt  *EpochStatement
	op    *OperatorStatement
}

// parseLogRecord reads an archive log record.
func parseLogRecord(rec []byte) (logRecord, error) {
	var probe struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(rec, &probe); err != nil {
		return logRecord{}, err
	}
	if probe.Type != nil && (*probe.Type == LogKeyEntryType || *probe.Type == LogContentKeyEntryType ||
		*probe.Type == LogContentKeyEscrowEntryType || *probe.Type == LogContentKeyRestoreEntryType) {
		return logRecord{}, nil // an archive or content key operation: neither
	}
	if probe.Type != nil && *probe.Type != StatementRekey {
		s, err := ParseOperatorStatement(rec)
		return logRecord{op: s}, err
	}
	if probe.Type != nil {
		s, err := ParseEpochStatement(rec)
		return logRecord{stmt: s}, err
	}
	var e archivesig.ReceiptEntry
	if err := json.Unmarshal(rec, &e); err != nil {
		return logRecord{}, err
	}
	if _, err := wire.ParseHash(e.BundleDigest); err != nil {
		return logRecord{}, err
	}
	return logRecord{entry: &e}, nil
}

// epochField is how an epoch is written in receipts, receipt entries and
// index events: 0 (absent) for epoch 1, so that epoch 1 is written as
// before epochs existed.
func epochField(epoch uint64) uint64 {
	if epoch <= 1 {
		return 0
	}
	return epoch
}

// epochOf reads an epoch field (absent: 1).
func epochOf(field uint64) uint64 { return max(field, 1) }

// decodeStatement decodes the one JSON value of a statement b into v,
// unknown members and trailing data refused (canonical form and fields
// are each statement's own checks).
func decodeStatement(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return stmtErr("json", err)
	}
	if dec.More() {
		return stmtErr("trailing data", nil)
	}
	return nil
}
