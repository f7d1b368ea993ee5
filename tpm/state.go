package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
)

// Files in Options.StateDir.
const (
	signKeyFile = "signing-key.json"
	dataKeyFile = "data-key.json"
	counterFile = "nv-counter.json"
)

const (
	keyKindSigning = "signing"
	keyKindData    = "data"
	maxStateFile   = 1 << 16
)

// keyFile is the on-disk form of a TPM-wrapped key: the public area and the
// private blob the SRK wraps, plus the PCR values its policy binds it to and,
// for the signing key, the AK's certification of it.
type keyFile struct {
	V             int            `json:"v"`
	Kind          string         `json:"kind"`
	Public        []byte         `json:"public"`  // TPMT_PUBLIC
	Private       []byte         `json:"private"` // TPM2B_PRIVATE contents
	PCRs          []int          `json:"pcrs"`
	PCRValues     map[int][]byte `json:"pcr_values"`
	CertifyAttest []byte         `json:"certify_attest,omitempty"` // TPMS_ATTEST
	CertifySig    []byte         `json:"certify_sig,omitempty"`    // TPMT_SIGNATURE
	// Version 2: the key's authPolicy is TPM2_PolicyAuthorize by the
	// operator's PCR-policy key (PolicyKey, the TPMT_PUBLIC it is loaded
	// under) for PolicyRef; PCRValues are the values at creation.
	PolicyKey []byte `json:"policy_key,omitempty"`
	PolicyRef []byte `json:"policy_ref,omitempty"`
}

// loadedKey is a validated keyFile.
type loadedKey struct {
	file   keyFile
	public tpm2.TPMTPublic
	policy []byte
	pkey   *ecdsa.PublicKey // PCR-policy key of a version 2 key, else nil
	pkName []byte           // its TPM Name
}

// authorized reports whether k is bound to an operator's PCR-policy key
// (TPM2_PolicyAuthorize) rather than to fixed PCR values.
func (k *loadedKey) authorized() bool { return k.pkey != nil }

// parseKeyFile validates the bytes of a key file of the given kind.
func parseKeyFile(name, kind string, b []byte) (*loadedKey, error) {
	bad := func(reason string, err error) error { return &StateError{File: name, Reason: reason, Err: err} }
	if len(b) > maxStateFile {
		return nil, bad("too large", nil)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, bad("decode", err)
	}
	if f.V != 1 && f.V != 2 {
		return nil, bad(fmt.Sprintf("version %d", f.V), nil)
	}
	if f.Kind != kind {
		return nil, bad(fmt.Sprintf("kind %q, want %q", f.Kind, kind), nil)
	}
	if err := checkPCRValues(f.PCRs, f.PCRValues); err != nil {
		return nil, bad("pcrs", err)
	}
	if len(f.Private) == 0 || len(f.Private) > 4096 {
		return nil, bad("private blob size", nil)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f.Public)
	if err != nil {
		return nil, bad("public area", err)
	}
	if !bytes.Equal(tpm2.Marshal(pub), f.Public) {
		return nil, bad("public area has trailing bytes", nil)
	}
	a := pub.ObjectAttributes
	if pub.NameAlg != tpm2.TPMAlgSHA256 || !a.FixedTPM || !a.FixedParent || a.UserWithAuth || a.AdminWithPolicy {
		return nil, bad("public area attributes", nil)
	}
	switch kind {
	case keyKindSigning:
		if pub.Type != tpm2.TPMAlgECC || !a.SignEncrypt || a.Restricted || a.Decrypt || !a.SensitiveDataOrigin {
			return nil, bad("not an ECC signing key", nil)
		}
		if _, err := eccPublicKey(pub); err != nil {
			return nil, bad("public key", err)
		}
	case keyKindData:
		if pub.Type != tpm2.TPMAlgKeyedHash || a.SignEncrypt || a.Decrypt || a.SensitiveDataOrigin {
			return nil, bad("not a sealed data object", nil)
		}
	}
	if f.V == 2 {
		pk, err := parsePolicyKey(f.PolicyKey, f.PolicyRef)
		if err != nil {
			return nil, bad("pcr policy key", err)
		}
		policy := attest.PolicyAuthorizeDigest(pk.Name, f.PolicyRef)
		if !bytes.Equal(policy, pub.AuthPolicy.Buffer) {
			return nil, bad("authPolicy is not PolicyAuthorize by the PCR policy key", nil)
		}
		return &loadedKey{file: f, public: *pub, policy: policy, pkey: pk.Key, pkName: pk.Name}, nil
	}
	if f.PolicyKey != nil || f.PolicyRef != nil {
		return nil, bad("version 1 key with a PCR policy key", nil)
	}
	policy, err := policyPCRDigest(f.PCRs, f.PCRValues)
	if err != nil {
		return nil, bad("policy", err)
	}
	if !bytes.Equal(policy, pub.AuthPolicy.Buffer) {
		return nil, bad("authPolicy does not match the PCR values", nil)
	}
	return &loadedKey{file: f, public: *pub, policy: policy}, nil
}

// checkPCRValues checks a sorted, duplicate-free selection with one SHA-256
// value for each PCR and no other values.
func checkPCRValues(pcrs []int, values map[int][]byte) error {
	if err := attest.CheckSelection(pcrs); err != nil {
		return err
	}
	if len(values) != len(pcrs) {
		return fmt.Errorf("%d values for %d pcrs", len(values), len(pcrs))
	}
	for _, p := range pcrs {
		if len(values[p]) != sha256.Size {
			return fmt.Errorf("pcr %d: value of %d bytes", p, len(values[p]))
		}
	}
	return nil
}

// counterState is the simulator's memory of its NV counter: the simulator
// forgets NV across restarts, so the last value is kept here and restored.
type counterState struct {
	V     int    `json:"v"`
	Index uint32 `json:"index"`
	Value uint64 `json:"value"`
}

func parseCounterFile(name string, b []byte) (counterState, error) {
	var c counterState
	if len(b) > maxStateFile {
		return c, &StateError{File: name, Reason: "too large"}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, &StateError{File: name, Reason: "decode", Err: err}
	}
	if c.V != 1 {
		return c, &StateError{File: name, Reason: fmt.Sprintf("version %d", c.V)}
	}
	return c, nil
}

// HasKeys reports whether stateDir holds the wrapped signing and data
// keys (Open without Options.Create refuses a dir without them).
func HasKeys(stateDir string) (bool, error) {
	for _, name := range []string{signKeyFile, dataKeyFile} {
		b, err := readState(stateDir, name)
		if err != nil {
			return false, err
		}
		if b == nil {
			return false, nil
		}
	}
	return true, nil
}

// readState reads a state file; a missing file gives (nil, nil).
func readState(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tpm: read state: %w", err)
	}
	return b, nil
}

// writeJSON writes v durably to dir/name: temp file, fsync, rename, fsync dir.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("tpm: encode %s: %w", name, err)
	}
	return writeFileDurable(dir, name, append(b, '\n'))
}

// writeFileDurable writes dir/name 0600 with fsutil.WriteFileAtomic.
func writeFileDurable(dir, name string, data []byte) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("tpm: write state: %w", err)
	}
	return nil
}

// sortedPCRs returns a sorted, duplicate-free copy of pcrs.
func sortedPCRs(pcrs []int) []int {
	out := slices.Clone(pcrs)
	slices.Sort(out)
	return slices.Compact(out)
}
