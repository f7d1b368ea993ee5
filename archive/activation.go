package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Credential activation binds an enrollment request's AK to its EK. The
// archive makes a credential for the EK and the AK's name (software
// TPM2_MakeCredential, tpm/attest.MakeCredential) and sends it as a
// Challenge; only the TPM that holds the EK, with the AK loaded, recovers
// the credential (TPM2_ActivateCredential) and answers it in an
// ActivationResponse. The registry keeps the SHA-256 of the credential.
//
//	challenge: {"version":1,"type":"edgeseal.enroll-challenge","device":"site/dev","keyId":"sha256:...",
//	            "credentialBlob":"<base64>","encryptedSecret":"<base64>"}
//	response:  {"version":1,"type":"edgeseal.enroll-activation","device":"site/dev","keyId":"sha256:...",
//	            "credential":"<base64>"}
const (
	ActivationVersion = 1
	TypeChallenge     = "edgeseal.enroll-challenge"
	TypeActivation    = "edgeseal.enroll-activation"
	// MaxActivationSize bounds a challenge or a response.
	MaxActivationSize = 8 << 10
)

// credentialSize is the size of the random credential of a challenge.
const credentialSize = 32

// Challenge is the archive's credential challenge for a pending request.
type Challenge struct {
	Version         int    `json:"version"`
	Type            string `json:"type"`
	Device          string `json:"device"`
	KeyID           string `json:"keyId"`
	CredentialBlob  []byte `json:"credentialBlob"`  // TPM2B_ID_OBJECT contents
	EncryptedSecret []byte `json:"encryptedSecret"` // TPM2B_ENCRYPTED_SECRET contents
}

// ActivationResponse is the device's answer to a Challenge: the
// credential its TPM recovered.
type ActivationResponse struct {
	Version    int    `json:"version"`
	Type       string `json:"type"`
	Device     string `json:"device"`
	KeyID      string `json:"keyId"`
	Credential []byte `json:"credential"`
}

// Marshal returns the challenge as JSON.
func (c *Challenge) Marshal() ([]byte, error) { return marshalActivation(c) }

// Marshal returns the response as JSON.
func (r *ActivationResponse) Marshal() ([]byte, error) { return marshalActivation(r) }

func marshalActivation(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("archive: activation: %w", err)
	}
	return b, nil
}

func activationErr(format, reason string, err error) error {
	return &wire.FormatError{Format: format, Reason: reason, Err: err}
}

func decodeActivation(b []byte, format, typ string, v any, version *int, gotType *string, device, keyID *string) error {
	if len(b) > MaxActivationSize {
		return fmt.Errorf("archive: %s of %d bytes: %w", format, len(b), wire.ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return activationErr(format, "json", err)
	}
	if dec.More() {
		return activationErr(format, "trailing data", nil)
	}
	if *version != ActivationVersion {
		return activationErr(format, fmt.Sprintf("version %d", *version), nil)
	}
	if *gotType != typ {
		return activationErr(format, fmt.Sprintf("type %.40q", *gotType), nil)
	}
	if err := wire.CheckDevice(*device); err != nil {
		return activationErr(format, "device", err)
	}
	if _, err := wire.ParseHash(*keyID); err != nil {
		return activationErr(format, "key id", err)
	}
	return nil
}

// ParseChallenge reads a challenge strictly (known fields, version 1,
// its type, a device name and key id, a blob and seed present).
func ParseChallenge(b []byte) (*Challenge, error) {
	var c Challenge
	if err := decodeActivation(b, "enroll challenge", TypeChallenge, &c, &c.Version, &c.Type, &c.Device, &c.KeyID); err != nil {
		return nil, err
	}
	if len(c.CredentialBlob) == 0 || len(c.EncryptedSecret) == 0 {
		return nil, activationErr("enroll challenge", "empty credential blob or secret", nil)
	}
	return &c, nil
}

// ParseActivationResponse reads a response strictly (known fields,
// version 1, its type, a device name and key id, a credential of 32
// bytes).
func ParseActivationResponse(b []byte) (*ActivationResponse, error) {
	var r ActivationResponse
	if err := decodeActivation(b, "enroll activation", TypeActivation, &r, &r.Version, &r.Type, &r.Device, &r.KeyID); err != nil {
		return nil, err
	}
	if len(r.Credential) != credentialSize {
		return nil, activationErr("enroll activation", fmt.Sprintf("credential of %d bytes (want %d)", len(r.Credential), credentialSize), nil)
	}
	return &r, nil
}

// IsActivationResponse tells an activation response from an enrollment
// request (both arrive on a device's enroll topic).
func IsActivationResponse(b []byte) bool {
	var probe struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.Type == TypeActivation
}

// Challenge makes a new credential challenge for the pending request of
// keyID of device name and records the SHA-256 of its credential (a
// challenge issued before for the request no longer activates it).
func (d *Devices) Challenge(ctx context.Context, name, keyID string) (*Challenge, error) {
	var out *Challenge
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[name]
		if !ok {
			return &DeviceError{Device: name, Op: "challenge", Reason: "not enrolled"}
		}
		dv.info.Requests = slices.Clone(dv.info.Requests) // p is changed in place
		p := dv.info.PendingKey(keyID)
		if p == nil {
			return &DeviceError{Device: name, Status: dv.info.Status, Op: "challenge", Reason: "no pending key " + keyID}
		}
		cred := make([]byte, credentialSize)
		if _, err := rand.Read(cred); err != nil {
			return fmt.Errorf("archive: challenge: %w", err)
		}
		t := p.Request.ParsedTrust()
		blob, enc, err := attest.MakeCredential(t.EKPublic, t.AKPublic, cred)
		if err != nil {
			return &DeviceError{Device: name, Status: dv.info.Status, Op: "challenge", Reason: "no credential can be made for the request's EK and AK: " + err.Error()}
		}
		p.Challenge, p.ChallengedAt = wire.FormatHash(sha256.Sum256(cred)), wire.FormatTime(d.now())
		out = &Challenge{Version: ActivationVersion, Type: TypeChallenge, Device: name, KeyID: keyID, CredentialBlob: blob, EncryptedSecret: enc}
		return nil
	})
	return out, err
}

// Activate checks a device's activation response against the challenge
// of its pending request and marks the request activated (approvable
// without --no-activation). A response that does not match the last
// challenge is a *DeviceError.
func (d *Devices) Activate(ctx context.Context, r *ActivationResponse) (DeviceInfo, error) {
	var out DeviceInfo
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[r.Device]
		if !ok {
			return &DeviceError{Device: r.Device, Op: "activate", Reason: "not enrolled"}
		}
		fail := func(reason string) error {
			return &DeviceError{Device: r.Device, Status: dv.info.Status, Op: "activate", Reason: reason}
		}
		dv.info.Requests = slices.Clone(dv.info.Requests) // p is changed in place
		p := dv.info.PendingKey(r.KeyID)
		switch {
		case p == nil:
			return fail("no pending key " + r.KeyID)
		case p.Challenge == "":
			return fail("no challenge was issued for key " + r.KeyID)
		}
		want, err := wire.ParseHash(p.Challenge)
		if err != nil {
			return fail("registry challenge: " + err.Error())
		}
		got := sha256.Sum256(r.Credential)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fail("credential activation FAILED for key " + r.KeyID + ": the answer is not the credential of the last challenge (the AK may not be in the TPM of the EK, or the challenge was replaced by a newer one)")
		}
		if !p.Activated() {
			p.ActivatedAt = wire.FormatTime(d.now())
		}
		out = dv.info
		return nil
	})
	if err == nil {
		d.log.Info("enrollment credential activated", "device", r.Device, "key", r.KeyID)
	}
	return out, err
}
