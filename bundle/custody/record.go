package custody

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// RecordVersion is the only record version this package reads and writes.
const RecordVersion = 1

// maxRecordSize bounds one canonical record.
const maxRecordSize = 1 << 20

// maxJSONInt is the largest integer JSON (IEEE double) carries exactly.
const maxJSONInt = 1<<53 - 1

// Record types (docs/formats.md, and docs/keys.md for the key records).
const (
	TypeExport          = "export"
	TypeExportRejected  = "export.rejected"
	TypeSeal            = "seal"
	TypeDeliveryReceipt = "delivery.receipt"
	TypeKeyCreate       = "key.create"
	TypeKeyRotate       = "key.rotate"
	TypeKeyRevoke       = "key.revoke"
	TypePolicyChange    = "policy.change"
	TypeRetentionPurge  = "retention.purge"
	TypeScrub           = "scrub"
	TypeAgentStart      = "agent.start"
	TypeKeyRecover      = "key.recover" // data key recovered from the operator's recovery wrap
	// TypePCRsAuthorized journals a PCR authorization the agent applied;
	// its body is the PCRAuthorization statement.
	TypePCRsAuthorized = "tpm.pcrs.authorized"
	// TypeArchiveKey: the agent learned a rotation of the archive's key;
	// the body is the announcement (the DSSE envelope, ParseArchiveKey).
	TypeArchiveKey = "archive.key"
	// TypeContentKey: the agent learned a newer content key of the
	// archive and seals new payloads to it; the body is the content key
	// announcement (the DSSE envelope, archivesig.ParseContentKey).
	TypeContentKey = "content.key"
	// TypeGovernanceAlert journals a governance alert the agent raised
	// on a policy load or a refused reload (GovernanceAlertBody).
	TypeGovernanceAlert = "governance.alert"
	// TypeArchiveCheckpoint journals an archive log checkpoint the agent
	// accepted from a receipt, with the receipt's consistency proof from
	// the one accepted before (archivesig.CheckpointRecord): its bundles
	// show auditors the log the archive showed the device.
	TypeArchiveCheckpoint = "archive.checkpoint"
)

var knownTypes = map[string]bool{
	TypeExport: true, TypeExportRejected: true, TypeSeal: true, TypeDeliveryReceipt: true,
	TypeKeyCreate: true, TypeKeyRotate: true, TypeKeyRevoke: true, TypePolicyChange: true,
	TypeRetentionPurge: true, TypeScrub: true, TypeAgentStart: true,
	TypeKeyRecover:        true,
	TypePCRsAuthorized:    true,
	TypeArchiveKey:        true,
	TypeContentKey:        true,
	TypeGovernanceAlert:   true,
	TypeArchiveCheckpoint: true,
}

// Record is one custody event, the leaf of the journal.
type Record struct {
	Seq    uint64
	Type   string
	Time   time.Time // written in UTC with microseconds
	Device string    // "<site>/<name>"
	Prev   [32]byte  // leaf hash of the previous record; zero for seq 0
	Actor  Actor
	Body   json.RawMessage // a JSON object; see ExportBody, RejectedBody, PurgeBody

	export    ExportBody // decoded by ParseRecord from exportRaw, if hasExport
	hasExport bool
	exportRaw []byte
	payload   [32]byte // export payload digest, decoded by ParseRecord
	cipher    [32]byte // its ciphertext's digest when encrypted
	encrypted bool
	timeText  string // Time as the record writes it, set by ParseRecord
	canonBody []byte // Body as SetExportBody wrote it: already canonical
}

// Actor names who caused the event.
type Actor struct {
	Kind string `json:"kind"`          // "principal", "agent", "operator", "archive"
	ID   string `json:"id"`            // principal name, key id, ...
	Via  string `json:"via,omitempty"` // "api", "spool", "cli", ...
}

type wireRecord struct {
	V      int             `json:"v"`
	Seq    uint64          `json:"seq"`
	Type   string          `json:"type"`
	Time   string          `json:"time"`
	Device string          `json:"device"`
	Prev   string          `json:"prev"`
	Actor  Actor           `json:"actor"`
	Body   json.RawMessage `json:"body"`
}

// ExportBody is the body of an export record.
type ExportBody struct {
	ExportID       string     `json:"exportId"`
	App            string     `json:"app"`
	Workflow       string     `json:"workflow"`
	Purpose        string     `json:"purpose"`
	Schema         string     `json:"schema"` // "id@version"
	Classification string     `json:"classification"`
	Retention      string     `json:"retention"`
	Destination    string     `json:"destination"`
	Policy         string     `json:"policy"` // "sha256:..." of the policy in force
	Payload        PayloadRef `json:"payload"`
	// PayloadCipher is set when the payload travels encrypted
	// (bundle/payloadcipher): Payload still names the plaintext, this
	// the suite, the content key and the ciphertext's digest.
	PayloadCipher *payloadcipher.Cipher `json:"payloadCipher,omitempty"`
}

// PayloadRef describes the payload bytes of an export, stored apart.
type PayloadRef struct {
	Digest           string `json:"digest"` // "sha256:..." of the bytes as exported
	Size             int64  `json:"size"`
	MediaType        string `json:"mediaType"`
	Canonicalization string `json:"canonicalization"` // "none", "jcs", ...
}

// RejectedBody is the body of an export.rejected record.
type RejectedBody struct {
	ExportID string `json:"exportId"`
	App      string `json:"app"`
	Workflow string `json:"workflow"`
	Policy   string `json:"policy"`
	Reason   string `json:"reason"`
	Digest   string `json:"digest,omitempty"`
}

// PurgeBody is the body of a retention.purge record: the payload bytes
// named here were deleted, their export leaves stay.
type PurgeBody struct {
	Payloads []string `json:"payloads"` // "sha256:..." digests
	Reason   string   `json:"reason"`
}

// SetBody stores v, marshalled, as the record body.
func (r *Record) SetBody(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bundle: record body: %w", err)
	}
	r.Body = b
	return nil
}

// Marshal returns the canonical (RFC 8785) bytes of r. It refuses what
// ParseRecord would refuse (for example a body with fractional numbers).
func (r *Record) Marshal() ([]byte, error) {
	if err := r.checkHead(); err != nil {
		return nil, err
	}
	out, err := r.appendCanonical(make([]byte, 0, 256+len(r.Body)))
	if err != nil {
		return nil, fmt.Errorf("bundle: record: canonicalize: %w", err)
	}
	if err := CheckRecord(out); err != nil {
		return nil, err
	}
	return out, nil
}

// appendCanonical writes the record's members in canonical (sorted)
// order: actor, body, device, prev, seq, time, type, v.
func (r *Record) appendCanonical(dst []byte) ([]byte, error) {
	if !utf8.ValidString(r.Device) || !utf8.ValidString(r.Actor.Kind) || !utf8.ValidString(r.Actor.ID) || !utf8.ValidString(r.Actor.Via) || !utf8.ValidString(r.Type) {
		return nil, wire.FormatErr("record", "head text is not valid UTF-8")
	}
	dst = append(dst, `{"actor":{"id":`...)
	dst = canonjson.AppendString(dst, r.Actor.ID)
	dst = append(dst, `,"kind":`...)
	dst = canonjson.AppendString(dst, r.Actor.Kind)
	if r.Actor.Via != "" {
		dst = append(dst, `,"via":`...)
		dst = canonjson.AppendString(dst, r.Actor.Via)
	}
	dst = append(dst, `},"body":`...)
	if r.bodyIsCanonical() {
		dst = append(dst, r.Body...)
	} else {
		var err error
		if dst, err = canonjson.Append(dst, r.Body); err != nil {
			return nil, err
		}
	}
	dst = append(dst, `,"device":`...)
	dst = canonjson.AppendString(dst, r.Device)
	dst = append(dst, `,"prev":"`+wire.HashPrefix...)
	dst = hex.AppendEncode(dst, r.Prev[:])
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"time":`...)
	dst = canonjson.AppendString(dst, wire.FormatTime(r.Time))
	dst = append(dst, `,"type":`...)
	dst = canonjson.AppendString(dst, r.Type)
	dst = append(dst, `,"v":`...)
	dst = strconv.AppendInt(dst, RecordVersion, 10)
	return append(dst, '}'), nil
}

func (r *Record) checkHead() error {
	switch {
	case r.Seq > maxJSONInt:
		return wire.FormatErr("record", "seq %d beyond 2^53", r.Seq)
	case !knownTypes[r.Type]:
		return wire.FormatErr("record", "unknown type %.40q", r.Type)
	case wire.CheckDevice(r.Device) != nil:
		return wire.CheckDevice(r.Device)
	case r.Actor.Kind == "" || r.Actor.ID == "":
		return wire.FormatErr("record", "actor needs kind and id")
	case len(bytes.TrimSpace(r.Body)) == 0 || bytes.TrimSpace(r.Body)[0] != '{':
		return wire.FormatErr("record", "body is not a JSON object")
	}
	return nil
}

// ParseRecord reads one record strictly: canonical RFC 8785 bytes
// (else *NotCanonicalError; numbers must be integers), valid JSON of the
// known shape with every field present, v == 1, a known type and a body
// of the type's shape.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes", wire.ErrTooLarge, len(b))
	}
	r := new(Record)
	var d recDecoder
	if err := d.parse(b, string(b), r); err != nil {
		return nil, err
	}
	return r, nil
}

// parse is ParseRecord into r; s holds the same bytes as b (string
// fields of r are cut from it).
func (d *recDecoder) parse(b []byte, s string, r *Record) error {
	if len(b) > maxRecordSize {
		return fmt.Errorf("%w: record of %d bytes", wire.ErrTooLarge, len(b))
	}
	d.s = s
	top, body, off, err := canonjson.CheckMembers(b, d.top[:0], d.body[:0])
	if err != nil {
		return &wire.NotCanonicalError{Format: "record", Offset: off, Err: err}
	}
	var w wireRecord
	if err := d.wireRecord(top, &w); err != nil {
		return wire.WrapFormat("record", "json", err)
	}
	if w.V != RecordVersion {
		return wire.FormatErr("record", "version %d", w.V)
	}
	t, err := wire.ParseTime(w.Time)
	if err != nil {
		return err
	}
	prev, err := wire.ParseHash(w.Prev)
	if err != nil {
		return err
	}
	*r = Record{Seq: w.Seq, Type: w.Type, Time: t, Device: w.Device, Prev: prev, Actor: w.Actor, Body: w.Body, timeText: w.Time}
	if err := r.checkHead(); err != nil {
		return err
	}
	return d.decodeBody(r, body)
}

// decodeBody decodes and checks the body of the known body types; the
// body must be canonical JSON already.
func (d *recDecoder) decodeBody(r *Record, ms []member) error {
	switch r.Type {
	case TypeExport:
		e := &r.export
		if err := d.export(ms, e); err != nil {
			*e = ExportBody{}
			return wire.WrapFormat("record", "export body", err)
		}
		p, err := e.checkDigests()
		if err != nil {
			*e = ExportBody{}
			return err
		}
		r.hasExport, r.exportRaw, r.payload = true, r.Body, p
		if e.PayloadCipher != nil {
			r.cipher, _ = wire.ParseHash(e.PayloadCipher.Digest)
			r.encrypted = true
		}
		return nil
	case TypeExportRejected:
		var e RejectedBody
		if err := d.rejected(ms, &e); err != nil {
			return wire.WrapFormat("record", "export.rejected body", err)
		}
		if e.Digest != "" {
			if _, err := wire.ParseHash(e.Digest); err != nil {
				return err
			}
		}
		return nil
	case TypeArchiveKey:
		if _, _, err := archivesig.ParseArchiveKey(r.Body); err != nil {
			return wire.WrapFormat("record", "archive.key body", err)
		}
		return nil
	case TypeContentKey:
		if _, _, err := archivesig.ParseContentKey(r.Body); err != nil {
			return wire.WrapFormat("record", "content.key body", err)
		}
		return nil
	case TypeArchiveCheckpoint:
		if _, err := archivesig.ParseCheckpointRecord(r.Body); err != nil {
			return wire.WrapFormat("record", "archive.checkpoint body", err)
		}
		return nil
	case TypeRetentionPurge:
		var p PurgeBody
		if err := d.purge(ms, &p); err != nil {
			return wire.WrapFormat("record", "retention.purge body", err)
		}
		for _, d := range p.Payloads {
			if _, err := wire.ParseHash(d); err != nil {
				return err
			}
		}
		return nil
	case TypeKeyCreate, TypeKeyRotate, TypeKeyRevoke:
		return checkKeyBody(r)
	case TypeGovernanceAlert:
		_, err := ParseGovernanceAlertBody(r.Body)
		return err
	}
	return nil
}

// ExportBody decodes the body of an export record.
func (r *Record) ExportBody() (*ExportBody, error) {
	if r.Type != TypeExport {
		return nil, wire.FormatErr("record", "type %s is not export", r.Type)
	}
	if e, ok := r.parsedExport(); ok {
		return &e, nil
	}
	var e ExportBody
	if err := strict.Unmarshal(r.Body, &e); err != nil {
		return nil, wire.WrapFormat("record", "export body", err)
	}
	return &e, nil
}

// parsedExport returns the export body ParseRecord decoded, if r.Body is
// still the body it decoded.
func (r *Record) parsedExport() (ExportBody, bool) {
	if !r.hasExport || r.Type != TypeExport || !bytes.Equal(r.exportRaw, r.Body) {
		return ExportBody{}, false
	}
	return r.export, true
}

// checkDigests checks the export body and returns its payload digest.
func (e *ExportBody) checkDigests() ([32]byte, error) {
	if e.ExportID == "" || e.App == "" {
		return [32]byte{}, wire.FormatErr("record", "export needs exportId and app")
	}
	if _, err := wire.ParseHash(e.Policy); err != nil {
		return [32]byte{}, err
	}
	p, err := wire.ParseHash(e.Payload.Digest)
	if err != nil {
		return [32]byte{}, err
	}
	if e.Payload.Size < 0 || e.Payload.Size > maxJSONInt {
		return [32]byte{}, wire.FormatErr("record", "payload size %d", e.Payload.Size)
	}
	if c := e.PayloadCipher; c != nil {
		// The suite is not checked here: an unknown one is refused by
		// name where the ciphertext is checked (payload.cipher).
		if _, err := wire.ParseHash(c.KeyID); err != nil {
			return [32]byte{}, err
		}
		if _, err := wire.ParseHash(c.Digest); err != nil {
			return [32]byte{}, err
		}
		for _, id := range [...]int{c.KEM, c.KDF, c.AEAD} {
			if id < 0 || id > 0xffff {
				return [32]byte{}, wire.FormatErr("record", "payloadCipher suite id %d out of range", id)
			}
		}
		if c.V != 0 && (c.V < 2 || c.V > 0xffff) {
			return [32]byte{}, wire.FormatErr("record", "payloadCipher version %d out of range (version 1 leaves v out)", c.V)
		}
	}
	return p, nil
}
