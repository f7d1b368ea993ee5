package tpm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/google/go-tpm/tpm2"
)

// Signing-key rotation in two steps, so that the caller can have the old
// key sign a statement naming the new one, and journal it, before the
// switch:
//
//  1. PrepareRotation creates a candidate signing key under the same SRK
//     and PCR policy, has the same AK certify it, and saves it as
//     signing-key.next.json. The key in force is untouched.
//  2. CommitRotation puts the candidate in force: the old key file is
//     kept as signing-key.json.old, the candidate replaces
//     signing-key.json in one rename, then the candidate file goes.
//
// A crash before the rename leaves the old key in force and the candidate
// pending (PendingRotation); after it, the new key is in force and a
// leftover candidate file names it. DiscardRotation drops a candidate.

// nextKeyFile holds the candidate signing key between PrepareRotation and
// CommitRotation.
const nextKeyFile = "signing-key.next.json"

// ErrNoRotation reports a CommitRotation without a pending candidate of
// that key id.
var ErrNoRotation = errors.New("tpm: no pending rotation of that key")

// PrepareRotation creates and certifies a candidate signing key bound to
// the same PCRs at their current values, saves it durably beside the key
// in force (which it does not change) and returns the identity the TPM
// will have once the candidate is committed. A candidate prepared before
// is replaced.
func (t *TPM) PrepareRotation(ctx context.Context) (Identity, error) {
	if err := t.lock(ctx); err != nil {
		return Identity{}, err
	}
	defer t.unlock()
	// Slots: SRK, candidate and AK; the signing key is reloaded by the
	// next Sign, the AK by certify.
	for _, h := range []*tpm2.TPMHandle{&t.ak, &t.sign} {
		if *h != 0 {
			if err := t.flush(*h); err != nil {
				return Identity{}, err
			}
			*h = 0
		}
	}
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return Identity{}, fmt.Errorf("tpm: rotate: srk: %w", err)
	}
	k, err := t.boundKey(srk, keyKindSigning, signingTemplate, nil)
	if err != nil {
		_ = t.flush(srk.handle)
		return Identity{}, fmt.Errorf("tpm: rotate: %w", err)
	}
	h, name, err := t.load(srk, k)
	if ferr := t.flush(srk.handle); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		if h != 0 {
			_ = t.flush(h)
		}
		return Identity{}, fmt.Errorf("tpm: rotate: load candidate: %w", err)
	}
	err = t.certifyCandidate(h, name, k)
	if ferr := t.flush(h); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return Identity{}, err
	}
	if err := writeJSON(t.stateDir, nextKeyFile, &k.file); err != nil {
		return Identity{}, err
	}
	id := candidateIdentity(t.id, k)
	t.log.Info("tpm: rotation candidate ready", "key_id", id.KeyID, "in_force", t.id.KeyID)
	return id, nil
}

// certifyCandidate has the AK certify the loaded candidate h into k.
func (t *TPM) certifyCandidate(h tpm2.TPMHandle, name tpm2.TPM2BName, k *loadedKey) error {
	if err := t.ensureAK(); err != nil {
		return err
	}
	rsp, err := tpm2.Certify{
		ObjectHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:   tpm2.AuthHandle{Handle: t.ak, Name: t.akName, Auth: tpm2.PasswordAuth(nil)},
		InScheme:     ecdsaScheme(),
	}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: rotate: certify candidate: %w", err)
	}
	k.file.CertifyAttest = slices.Clone(rsp.CertifyInfo.Bytes())
	k.file.CertifySig = tpm2.Marshal(&rsp.Signature)
	return nil
}

// PendingRotation returns the candidate a PrepareRotation saved and no
// CommitRotation or DiscardRotation removed (a crash in between); ok is
// false when there is none. Its KeyID may be the key in force (a crash
// after the commit's rename): commit it again to clean up.
func (t *TPM) PendingRotation(ctx context.Context) (id Identity, ok bool, err error) {
	if err := t.lock(ctx); err != nil {
		return Identity{}, false, err
	}
	defer t.unlock()
	k, err := t.readCandidate()
	if err != nil || k == nil {
		return Identity{}, false, err
	}
	return candidateIdentity(t.id, k), true, nil
}

// readCandidate reads the candidate file; nil when absent.
func (t *TPM) readCandidate() (*loadedKey, error) {
	b, err := readState(t.stateDir, nextKeyFile)
	if err != nil || b == nil {
		return nil, err
	}
	k, err := parseKeyFile(nextKeyFile, keyKindSigning, b)
	if err != nil {
		return nil, err
	}
	if len(k.file.CertifyAttest) == 0 || len(k.file.CertifySig) == 0 {
		return nil, &StateError{File: nextKeyFile, Reason: "candidate without certification"}
	}
	return k, nil
}

// CommitRotation puts the pending candidate named keyID in force and
// returns the new identity. The old key file is kept as
// signing-key.json.old. Committing the key already in force only removes
// a leftover candidate file. Without a candidate of that id it returns
// an error wrapping ErrNoRotation and changes nothing.
func (t *TPM) CommitRotation(ctx context.Context, keyID string) (Identity, error) {
	if err := t.lock(ctx); err != nil {
		return Identity{}, err
	}
	defer t.unlock()
	k, err := t.readCandidate()
	if err != nil {
		return Identity{}, err
	}
	if keyID == t.id.KeyID {
		if k != nil && keyIDOf(k) == keyID {
			if err := removeDurable(t.stateDir, nextKeyFile); err != nil {
				return Identity{}, err
			}
		}
		return t.Identity(), nil
	}
	if k == nil || keyIDOf(k) != keyID {
		return Identity{}, fmt.Errorf("tpm: commit rotation to %s: %w", keyID, ErrNoRotation)
	}
	if err := writeJSON(t.stateDir, signKeyFile+".old", &t.signKey.file); err != nil {
		return Identity{}, err
	}
	if err := writeJSON(t.stateDir, signKeyFile, &k.file); err != nil { // the switch
		return Identity{}, err
	}
	old := t.id.KeyID
	if t.sign != 0 {
		_ = t.flush(t.sign) // the old key: nothing uses it any more
		t.sign = 0
	}
	t.signKey = k
	t.setSigningIdentity()
	if err := removeDurable(t.stateDir, nextKeyFile); err != nil {
		return Identity{}, err
	}
	t.log.Warn("tpm: signing key rotated", "key_id", t.id.KeyID, "old_key_id", old)
	return t.Identity(), nil
}

// DiscardRotation removes a pending candidate (none: no-op). The TPM
// keeps nothing of it: the candidate is only its wrapped blob.
func (t *TPM) DiscardRotation(ctx context.Context) error {
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	return removeDurable(t.stateDir, nextKeyFile)
}

// candidateIdentity is base with the signing key replaced by k.
func candidateIdentity(base Identity, k *loadedKey) Identity {
	id := base
	id.SigningPublic = slices.Clone(k.file.Public)
	id.Certify = Attestation{Attest: slices.Clone(k.file.CertifyAttest), Signature: slices.Clone(k.file.CertifySig)}
	id.PCRs = slices.Clone(k.file.PCRs)
	id.PCRValues = cloneValues(k.file.PCRValues)
	id.PolicyDigest = slices.Clone(k.policy)
	id.KeyID = keyIDOf(k)
	id.EKPublic, id.EKCert, id.AKPublic = slices.Clone(base.EKPublic), slices.Clone(base.EKCert), slices.Clone(base.AKPublic)
	return id
}

// keyIDOf is the KeyID of a key file's public area.
func keyIDOf(k *loadedKey) string {
	sum := sha256.Sum256(k.file.Public)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// removeDurable removes dir/name (absent: no-op) and syncs dir.
func removeDurable(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("tpm: remove state: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("tpm: remove state: %w", err)
	}
	return nil
}
