package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm"
)

// PCR authorizations. A device whose keys are bound to an operator's
// PCR-policy key uses them under the PCR values of the authorization in
// force: PCRAuthFile in the TPM state directory, a trustfile.PCRAuthorization
// statement. `edgeseal agent authorize-pcrs` checks a statement and stores
// it there (or an operator drops the file in). The running core looks at
// the file at every seal attempt: a new statement that verifies and names
// the PCR values the TPM shows now is journaled as a tpm.pcrs.authorized
// record first, then installed in the TPM, so the seal that first signs
// under it carries it. The last journaled statement is kept in
// pcrAuthJournaledFile, so a restart does not journal it again. A
// statement signed before the one stored or journaled (an old one
// replayed) is refused: verifiers would refuse the bundle carrying it.

// PCRAuthFile is the authorization in force, in the TPM state directory.
const PCRAuthFile = "pcr-authorization.json"

// pcrAuthJournaledFile holds a copy of the statement last journaled.
const pcrAuthJournaledFile = "pcr-authorization.journaled.json"

// PCRAuthorizer is what PCR authorizations need of a TPM; *tpm.TPM
// implements it.
type PCRAuthorizer interface {
	Identity() tpm.Identity
	ReadPCRs(ctx context.Context) (map[int][]byte, error)
	Authorize(ctx context.Context, a tpm.PCRAuthorization) error
}

// PCRAuthError reports a statement the agent will not apply: Reason says
// why (not for this device, not by its policy key, other PCRs, values not
// those the TPM shows now, an unsafe file).
type PCRAuthError struct {
	File   string
	Reason string
	Err    error
}

func (e *PCRAuthError) Error() string {
	s := "agent: pcr authorization " + e.File + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *PCRAuthError) Unwrap() error { return e.Err }

// readPCRAuthFile reads a statement file: a regular file (not a symlink)
// of at most trustfile.MaxPCRAuthSize bytes. An absent file is (nil, nil).
func readPCRAuthFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &PCRAuthError{File: path, Reason: "stat", Err: err}
	}
	if !fi.Mode().IsRegular() {
		return nil, &PCRAuthError{File: path, Reason: "not a regular file (symlinks are refused)"}
	}
	if fi.Size() > trustfile.MaxPCRAuthSize {
		return nil, &PCRAuthError{File: path, Reason: fmt.Sprintf("%d bytes, at most %d", fi.Size(), trustfile.MaxPCRAuthSize)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &PCRAuthError{File: path, Reason: "open", Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, trustfile.MaxPCRAuthSize+1))
	if err != nil {
		return nil, &PCRAuthError{File: path, Reason: "read", Err: err}
	}
	if len(b) > trustfile.MaxPCRAuthSize {
		return nil, &PCRAuthError{File: path, Reason: "grew past the size bound"}
	}
	return b, nil
}

// CheckPCRAuthorization parses raw and checks it against the device's PCR
// policy: the key, the policyRef (the device name) and the PCR selection
// the keys are bound to.
func CheckPCRAuthorization(raw []byte, device string, policy tpm.PCRPolicy, pcrs []int) (*trustfile.PCRAuthorization, error) {
	a, err := trustfile.ParsePCRAuthorization(raw)
	if err != nil {
		return nil, err
	}
	if policy.Key == nil {
		return nil, &PCRAuthError{Reason: "the TPM keys are bound to fixed PCR values, not to a PCR policy key (enrolled without --pcr-policy-key)"}
	}
	if err := a.Verify(policy.Key, device); err != nil {
		return nil, err
	}
	if !bytes.Equal(policy.Ref, trustfile.PCRPolicyRef(device)) {
		return nil, &PCRAuthError{Reason: fmt.Sprintf("the keys are bound to a policyRef that is not %s's", device)}
	}
	if got, _ := a.PCRs(); !slices.Equal(got, pcrs) {
		return nil, &PCRAuthError{Reason: fmt.Sprintf("authorizes pcrs %v, the keys are bound to %v", got, pcrs)}
	}
	return a, nil
}

// StorePCRAuthorization checks raw against the PCR policy of the keys in
// stateDir (read from the key file; the TPM is not opened, so the agent
// may be running) and stores it durably as PCRAuthFile, where the running
// agent picks it up at its next seal attempt.
func StorePCRAuthorization(stateDir, device string, raw []byte) (*trustfile.PCRAuthorization, error) {
	if len(raw) > trustfile.MaxPCRAuthSize {
		return nil, fmt.Errorf("%w: pcr authorization of %d bytes", wire.ErrTooLarge, len(raw))
	}
	policy, pcrs, ok, err := tpm.ReadPCRPolicy(stateDir)
	if err != nil {
		return nil, err
	}
	if !ok {
		policy = tpm.PCRPolicy{}
	}
	a, err := CheckPCRAuthorization(raw, device, policy, pcrs)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{PCRAuthFile, pcrAuthJournaledFile} {
		prev, err := readPCRAuthFile(filepath.Join(stateDir, name))
		if err != nil || prev == nil {
			continue
		}
		if p, err := trustfile.ParsePCRAuthorization(prev); err == nil {
			if err := notOlder(a, p); err != nil {
				return nil, err
			}
		}
	}
	canon, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(stateDir, PCRAuthFile), canon, 0o600); err != nil {
		return nil, err
	}
	return a, nil
}

// policyOf is the PCR policy a TPM identity names.
func policyOf(id tpm.Identity) (tpm.PCRPolicy, error) {
	if id.PCRPolicyKey == nil {
		return tpm.PCRPolicy{}, nil
	}
	k, err := x509.ParsePKIXPublicKey(id.PCRPolicyKey)
	if err != nil {
		return tpm.PCRPolicy{}, err
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return tpm.PCRPolicy{}, errors.New("pcr policy key is not ECDSA")
	}
	return tpm.PCRPolicy{Key: ek, Ref: id.PCRPolicyRef}, nil
}

// tpmAuthorization converts a checked statement for TPM.Authorize.
func tpmAuthorization(a *trustfile.PCRAuthorization) tpm.PCRAuthorization {
	pcrs, values := a.PCRs()
	return tpm.PCRAuthorization{PCRs: pcrs, Values: values, Signature: slices.Clone(a.Signature)}
}

// LoadPCRAuthorization installs the authorization stored in stateDir in
// t, before the data key is unsealed at start. It returns nil, nil when
// none is stored. A stored statement that is refused (not for this
// device or key, or signed before the one last journaled) is reported
// with *PCRAuthError, and the one last journaled, if any, is installed
// instead. When the stored statement names values the PCRs do not hold
// yet (shipped ahead of a firmware update) and the one last journaled
// does, that one is installed: the agent applies the new one once the
// PCRs show its values.
func LoadPCRAuthorization(ctx context.Context, stateDir, device string, t PCRAuthorizer) (*trustfile.PCRAuthorization, error) {
	id := t.Identity()
	policy, err := policyOf(id)
	if err != nil {
		return nil, &PCRAuthError{File: stateDir, Reason: "pcr policy key", Err: err}
	}
	check := func(name string) (*trustfile.PCRAuthorization, error) {
		path := filepath.Join(stateDir, name)
		raw, err := readPCRAuthFile(path)
		if err != nil || raw == nil {
			return nil, err
		}
		a, err := CheckPCRAuthorization(raw, device, policy, id.PCRs)
		if err != nil {
			return nil, &PCRAuthError{File: path, Reason: "refused", Err: err}
		}
		return a, nil
	}
	stored, serr := check(PCRAuthFile)
	journaled, jerr := check(pcrAuthJournaledFile)
	if jerr != nil {
		journaled = nil
	}
	if stored != nil {
		if err := notOlder(stored, journaled); err != nil {
			stored, serr = nil, &PCRAuthError{File: filepath.Join(stateDir, PCRAuthFile), Reason: "refused", Err: err}
		}
	}
	use := stored
	if use == nil {
		use = journaled
	} else if journaled != nil {
		if cur, err := t.ReadPCRs(ctx); err == nil && !holds(cur, stored) && holds(cur, journaled) {
			use = journaled
		}
	}
	if use != nil {
		if err := t.Authorize(ctx, tpmAuthorization(use)); err != nil {
			return nil, err
		}
	}
	return use, serr
}

// holds reports whether the PCR values cur are those a authorizes.
func holds(cur map[int][]byte, a *trustfile.PCRAuthorization) bool {
	pcrs, values := a.PCRs()
	for _, p := range pcrs {
		if !bytes.Equal(cur[p], values[p]) {
			return false
		}
	}
	return true
}

// pcrAuthState is the core's memory of PCR authorizations.
type pcrAuthState struct {
	journaled [32]byte                    // digest of the statement last journaled and installed
	last      *trustfile.PCRAuthorization // that statement, nil if unknown
	refused   [32]byte                    // digest of the statement last refused (logged once)
}

// initPCRAuth reads which statement was journaled last.
func (c *Core) initPCRAuth() {
	if c.opts.PCRAuthDir == "" {
		return
	}
	raw, err := readPCRAuthFile(filepath.Join(c.opts.PCRAuthDir, pcrAuthJournaledFile))
	if err != nil || raw == nil {
		return
	}
	if a, err := trustfile.ParsePCRAuthorization(raw); err == nil {
		c.pcrAuth.journaled, c.pcrAuth.last = sha256.Sum256(raw), a
	}
}

// notOlder refuses a statement signed before prev (nil: none), or at the
// same time for other values: the verifier would refuse it.
func notOlder(a, prev *trustfile.PCRAuthorization) error {
	switch {
	case prev == nil:
		return nil
	case a.Time < prev.Time:
		return &PCRAuthError{Reason: fmt.Sprintf("signed at %s, before the authorization in force (%s): an older authorization is not applied", a.Time, prev.Time)}
	case a.Time == prev.Time && a.ApprovedPolicy != prev.ApprovedPolicy:
		return &PCRAuthError{Reason: fmt.Sprintf("signed at %s like the authorization in force, for other values", a.Time)}
	}
	return nil
}

// applyPCRAuthorization journals and installs a new statement found in
// PCRAuthFile; the caller holds sealMu. A statement that does not verify,
// or whose values the PCRs do not hold now, is refused loudly (once per
// statement) and left in place: the check runs again at the next attempt.
func (c *Core) applyPCRAuthorization(ctx context.Context) error {
	az, ok := c.t.(PCRAuthorizer)
	if c.opts.PCRAuthDir == "" || !ok {
		return nil
	}
	path := filepath.Join(c.opts.PCRAuthDir, PCRAuthFile)
	raw, err := readPCRAuthFile(path)
	if err != nil || raw == nil {
		return err
	}
	sum := sha256.Sum256(raw)
	if sum == c.pcrAuth.journaled {
		return nil
	}
	id := az.Identity()
	policy, err := policyOf(id)
	if err != nil {
		return &PCRAuthError{File: path, Reason: "pcr policy key", Err: err}
	}
	a, err := CheckPCRAuthorization(raw, c.device, policy, id.PCRs)
	if err == nil {
		err = notOlder(a, c.pcrAuth.last)
	}
	if err != nil {
		return &PCRAuthError{File: path, Reason: "refused", Err: err}
	}
	cur, err := az.ReadPCRs(ctx)
	if err != nil {
		return fmt.Errorf("agent: pcr authorization: %w", err)
	}
	pcrs, values := a.PCRs()
	for _, p := range pcrs {
		if !bytes.Equal(cur[p], values[p]) {
			return &PCRAuthError{File: path, Reason: fmt.Sprintf("authorizes pcr %d = %x, the TPM shows %x now; applied once the PCRs hold it", p, values[p], cur[p])}
		}
	}
	body, err := a.Marshal()
	if err != nil {
		return err
	}
	// Journaled before it is installed: no seal signs under it without it.
	if _, err := c.Append(ctx, custody.TypePCRsAuthorized, custody.Actor{Kind: "operator", ID: a.PolicyKeyID, Via: "tpm-state"}, rawJSON(body), nil); err != nil {
		return fmt.Errorf("agent: journal pcr authorization: %w", err)
	}
	if err := az.Authorize(ctx, tpmAuthorization(a)); err != nil {
		return fmt.Errorf("agent: install pcr authorization: %w", err)
	}
	c.pcrAuth.journaled, c.pcrAuth.last = sum, a
	if err := fsutil.WriteFileAtomic(filepath.Join(c.opts.PCRAuthDir, pcrAuthJournaledFile), raw, 0o600); err != nil {
		c.log.Warn("pcr authorization: cannot record that it was journaled; it will be journaled again after a restart", "err", err)
	}
	c.log.Warn("PCR AUTHORIZATION APPLIED: sealing under the operator's new PCR values",
		"pcrs", pcrs, "values", formatValues(pcrs, values), "policy_key", a.PolicyKeyID, "signed", a.Time)
	return nil
}

// pcrAuthCheck runs applyPCRAuthorization and logs a refusal once per
// statement; sealing goes on either way.
func (c *Core) pcrAuthCheck(ctx context.Context) {
	err := c.applyPCRAuthorization(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	raw, _ := readPCRAuthFile(filepath.Join(c.opts.PCRAuthDir, PCRAuthFile))
	sum := sha256.Sum256(raw)
	if sum != c.pcrAuth.refused {
		c.pcrAuth.refused = sum
		c.log.Error("PCR AUTHORIZATION NOT APPLIED", "err", err)
		c.alarm(AlarmPCRAuthorization, -1, err.Error())
	}
}

func formatValues(pcrs []int, values map[int][]byte) map[string]string {
	out := make(map[string]string, len(pcrs))
	for _, p := range pcrs {
		out[fmt.Sprint(p)] = hex.EncodeToString(values[p])
	}
	return out
}

// rawJSON is a body that is already JSON.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// authorizedReader is implemented by *tpm.TPM.
type authorizedReader interface {
	Authorized() map[int][]byte
}

// expectedPCRs is what the PCRs must hold for the keys to work: the values
// the keys are bound to, or for keys bound to a PCR policy key those of
// the authorization in force (none: nil, nothing matches).
func expectedPCRs(t TPM, id tpm.Identity) map[int][]byte {
	if id.PCRPolicyKey == nil {
		return id.PCRValues
	}
	if a, ok := t.(authorizedReader); ok {
		return a.Authorized()
	}
	return id.PCRValues
}
