package archive

import (
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// Decryption is a custody event (docs/formats.md "Decrypt entries"):
// plaintext leaves the archive only through the read API (a payload, an
// evidence pack) for a session whose roles may see the export's
// classification, and each decryption, like each refused one, is a
// decrypt entry of the access log, appended before the plaintext is
// sent: who (user, roles, via), which export (target), why (a case id or
// a free reason), when (time), from where (remote), and what was handed
// out (the plaintext's digest, checked against the record's after
// decryption, the ciphertext's and the content key's ids).

// DecryptEntryType is the "type" of a decrypt entry in the access log.
const DecryptEntryType = "decrypt"

// Bounds of a decrypt entry's why.
const (
	MaxDecryptCase   = 128
	MaxDecryptReason = 256
)

// AccessDecrypt is the decrypt member of a decrypt entry. Case or Reason
// (or both) say why; an entry whose outcome is ok names the plaintext
// handed out (Plaintext, Ciphertext, KeyID); a refused one says why it
// was refused (Refused).
type AccessDecrypt struct {
	Case           string `json:"case,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Classification string `json:"classification,omitempty"`
	Plaintext      string `json:"plaintext,omitempty"`  // sha256: of the plaintext (the record's payload digest)
	Ciphertext     string `json:"ciphertext,omitempty"` // sha256: of the ciphertext file
	KeyID          string `json:"keyId,omitempty"`      // the content key it opened with
	Refused        string `json:"refused,omitempty"`
}

func (d *AccessDecrypt) bound() {
	d.Case, d.Reason = cut(d.Case, MaxDecryptCase), cut(d.Reason, MaxDecryptReason)
	d.Classification, d.Refused = cut(d.Classification, maxAccessText), cut(d.Refused, maxAccessText)
	d.Plaintext, d.Ciphertext, d.KeyID = cut(d.Plaintext, 128), cut(d.Ciphertext, 128), cut(d.KeyID, 128)
}

// check: an ok decryption names why, and the plaintext, ciphertext and
// key as hashes, and is not refused; any other outcome hands nothing out
// and says why it was refused.
func (d *AccessDecrypt) check(outcome string) error {
	if outcome == "ok" {
		switch {
		case d.Case == "" && d.Reason == "":
			return errors.New("decrypt: no case and no reason")
		case !payloadcipher.ValidHash(d.Plaintext) || !payloadcipher.ValidHash(d.Ciphertext) || !payloadcipher.ValidHash(d.KeyID):
			return errors.New("decrypt: plaintext, ciphertext and keyId must be sha256:<64 hex>")
		case d.Refused != "":
			return errors.New("decrypt: an ok decryption with a refusal")
		}
		return nil
	}
	if d.Plaintext != "" || d.Ciphertext != "" || d.KeyID != "" {
		return fmt.Errorf("decrypt: outcome %q names a plaintext", outcome)
	}
	if d.Refused == "" {
		return fmt.Errorf("decrypt: outcome %q without refused", outcome)
	}
	return nil
}

// Decrypted is a payload decrypted for a custody read: the plaintext,
// checked against its record's digest and size, and what the decrypt
// entry records of it.
type Decrypted struct {
	Plaintext []byte
	Entry     AccessDecrypt // Plaintext, Ciphertext, KeyID and Classification set
}

// DecryptExport decrypts the ciphertext file of the export record rec
// (OpenPayload: the content key the record names, the plaintext checked
// against the record) and returns it with the members of its decrypt
// entry. It logs nothing: the caller appends the decrypt entry
// (RecordAccess) before it hands the plaintext out.
func (a *Archive) DecryptExport(rec, file []byte) (*Decrypted, error) {
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return nil, err
	}
	e, err := r.ExportBody()
	if err != nil {
		return nil, err
	}
	if e.PayloadCipher == nil {
		return nil, ErrNotEncrypted
	}
	pt, err := a.OpenPayload(rec, file)
	if err != nil {
		return nil, err
	}
	if d := payloadcipher.Digest(pt); d != e.Payload.Digest { // OpenPayload checked it; this is the entry's guarantee
		return nil, fmt.Errorf("archive: export %s decrypts to %s, not %s", e.ExportID, d, e.Payload.Digest)
	}
	return &Decrypted{Plaintext: pt, Entry: AccessDecrypt{
		Classification: e.Classification, Plaintext: e.Payload.Digest,
		Ciphertext: e.PayloadCipher.Digest, KeyID: e.PayloadCipher.KeyID,
	}}, nil
}

// ErrNotEncrypted is a decryption asked of an export whose payload the
// agent did not encrypt (it is served as stored).
var ErrNotEncrypted = errors.New("archive: the export's payload is not encrypted")
