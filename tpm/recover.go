package tpm

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/google/go-tpm/tpm2"
)

// identityFile records which TPM the keys in the state dir belong to: the
// EK and AK public keys at enrollment. Open compares the TPM's with it.
const identityFile = "tpm-identity.json"

// NotEnrolledError is a state directory without the device's keys: the
// device was never enrolled (`edgeseal tpm enroll`), or the configured
// path is wrong, or the key files were deleted. Open creates keys only
// with Options.Create.
type NotEnrolledError struct {
	Dir     string
	Missing []string // the key files absent from Dir
}

func (e *NotEnrolledError) Error() string {
	if len(e.Missing) == 2 {
		return fmt.Sprintf("no TPM keys in %s: this device is not enrolled, or the path is wrong", e.Dir)
	}
	return fmt.Sprintf("tpm: %s has no %v: the TPM state is incomplete; restore it from a backup, or recover the data key from the recovery wrap", e.Dir, e.Missing)
}

// ClearedError is a TPM that no longer holds the keys of the state
// directory: it was cleared (its storage seed changed, so the saved blobs
// no longer load under the SRK) or replaced (its EK or AK is not the one
// recorded at enrollment). The signing key and the sealed data key are
// gone for good; the data key can come back only from the recovery wrap.
type ClearedError struct {
	Dir    string
	Reason string
	Err    error // the TPM's answer, when there was one
}

func (e *ClearedError) Error() string {
	msg := fmt.Sprintf("tpm: the TPM no longer holds the keys in %s (%s): it was cleared or replaced", e.Dir, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ClearedError) Unwrap() error { return e.Err }

// prepareStateDir creates the state dir when Open may create keys; else
// a missing dir is *NotEnrolledError (a mistyped path is not created).
func prepareStateDir(opts Options) error {
	if opts.Create {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return fmt.Errorf("tpm: open: %w", err)
		}
		return nil
	}
	fi, err := os.Stat(opts.StateDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &NotEnrolledError{Dir: opts.StateDir, Missing: []string{signKeyFile, dataKeyFile}}
	case err != nil:
		return fmt.Errorf("tpm: open: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("tpm: open: state dir %s is not a directory", opts.StateDir)
	}
	return nil
}

// checkEnrolled decides, before anything is created, whether initKeys may
// create the missing keys: only with Options.Create, and never a new data
// key beside an existing signing key (that would lose the journal).
func (t *TPM) checkEnrolled(signBytes, dataBytes []byte) error {
	var missing []string
	if signBytes == nil {
		missing = append(missing, signKeyFile)
	}
	if dataBytes == nil {
		missing = append(missing, dataKeyFile)
	}
	switch {
	case len(missing) == 0:
		return nil
	case !t.create:
		return &NotEnrolledError{Dir: t.stateDir, Missing: missing}
	case dataBytes == nil && signBytes != nil:
		return &NotEnrolledError{Dir: t.stateDir, Missing: missing}
	}
	return nil
}

// CreatedDataKey returns the data key this Open created (Options.Create
// on a state dir without one), or nil when it loaded an existing one.
// `edgeseal tpm enroll` wraps it to the operator's recovery key: a data key
// bound to a PCR-policy key does not unseal before the first authorization
// of PCR values is installed, which comes after enrollment.
func (t *TPM) CreatedDataKey() []byte {
	t.sem <- struct{}{}
	defer func() { <-t.sem }()
	return slices.Clone(t.createdDataKey)
}

// newDataKeySecret is the value a new data key seals: Options.DataKey
// when set (a recovered key), else 32 random bytes.
func (t *TPM) newDataKeySecret() ([]byte, error) {
	if t.newDataKey != nil {
		return slices.Clone(t.newDataKey), nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("tpm: data key: %w", err)
	}
	return secret, nil
}

// loadFailed classifies a failed load of a saved key blob: the TPM
// refusing the blob's integrity or its public area means the SRK is not
// the one that wrapped it (a cleared or another TPM).
func (t *TPM) loadFailed(kind string, err error) error {
	if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCSize) || errors.Is(err, tpm2.TPMRCValue) ||
		errors.Is(err, tpm2.TPMRCKey) || errors.Is(err, tpm2.TPMRCBinding) {
		return &ClearedError{Dir: t.stateDir, Reason: "the saved " + kind + " key no longer loads under the storage root key", Err: err}
	}
	return fmt.Errorf("tpm: load %s key: %w", kind, err)
}

// identityState is the file identityFile.
type identityState struct {
	V        int    `json:"v"`
	EKPublic string `json:"ek_sha256"` // hex SHA-256 of the EK's PKIX DER
	AKPublic string `json:"ak_sha256"` // hex SHA-256 of the AK's TPMT_PUBLIC
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkIdentity compares the TPM's EK and AK with those recorded in the
// state dir, and records them when the dir has no record yet (a device
// enrolled before the record existed, or a new enrollment).
func (t *TPM) checkIdentity() error {
	cur := identityState{V: 1, EKPublic: hexSum(t.id.EKPublic), AKPublic: hexSum(t.akPub)}
	b, err := readState(t.stateDir, identityFile)
	if err != nil {
		return err
	}
	if b == nil {
		return writeJSON(t.stateDir, identityFile, &cur)
	}
	rec, err := parseIdentityFile(b)
	if err != nil {
		return err
	}
	switch {
	case rec.EKPublic != cur.EKPublic:
		return &ClearedError{Dir: t.stateDir, Reason: "the TPM's endorsement key is not the one recorded at enrollment"}
	case rec.AKPublic != cur.AKPublic:
		return &ClearedError{Dir: t.stateDir, Reason: "the TPM's attestation key is not the one recorded at enrollment"}
	}
	return nil
}

// parseIdentityFile reads identityFile strictly: version 1, two SHA-256
// hex digests, no other fields, nothing after the object.
func parseIdentityFile(b []byte) (identityState, error) {
	var rec identityState
	if len(b) > maxStateFile {
		return rec, &StateError{File: identityFile, Reason: "too large"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, &StateError{File: identityFile, Reason: "decode", Err: err}
	}
	if dec.More() {
		return rec, &StateError{File: identityFile, Reason: "data after the object"}
	}
	if rec.V != 1 {
		return rec, &StateError{File: identityFile, Reason: fmt.Sprintf("version %d", rec.V)}
	}
	for _, h := range []string{rec.EKPublic, rec.AKPublic} {
		if d, err := hex.DecodeString(h); err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != h {
			return rec, &StateError{File: identityFile, Reason: fmt.Sprintf("%.80q is not a lowercase hex SHA-256", h)}
		}
	}
	return rec, nil
}

// stateFiles are the files RetireState moves.
var stateFiles = []string{signKeyFile, dataKeyFile, counterFile, identityFile,
	signKeyFile + ".old", dataKeyFile + ".old"}

// RetireState moves the key files of a TPM that no longer holds them
// (ClearedError) out of the way, into a new subdirectory of stateDir
// named retired-<UTC time>, which it returns; other files (such as the
// recovery wrap) stay. Nothing is deleted: the files prove nothing any
// more but are kept for the record.
func RetireState(stateDir string) (string, error) {
	dir := filepath.Join(stateDir, "retired-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("tpm: retire state: %w", err)
	}
	for _, name := range stateFiles {
		err := os.Rename(filepath.Join(stateDir, name), filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("tpm: retire state: %w", err)
		}
	}
	for _, d := range []string{dir, stateDir} {
		if err := fsutil.SyncDir(d); err != nil {
			return "", fmt.Errorf("tpm: retire state: %w", err)
		}
	}
	return dir, nil
}
