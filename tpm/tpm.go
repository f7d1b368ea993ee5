package tpm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
)

// DefaultNVIndex is the NV index of the seal counter when Options.NVIndex is
// zero: in the owner range 0x01000000-0x013FFFFF ("E5" for edgeseal).
const DefaultNVIndex uint32 = 0x01000E50

// DefaultPCRs are the PCRs the signing key and data key are bound to when
// Options.PCRs is empty: firmware, option ROM code, boot loader, secure boot.
var DefaultPCRs = []int{0, 2, 4, 7}

// Options configures Open.
type Options struct {
	StateDir string       // key blobs and certification, required
	PCRs     []int        // default DefaultPCRs
	NVIndex  uint32       // default DefaultNVIndex
	Logger   *slog.Logger // default discards
	// Simulator opens the in-process simulator for "simulator:DIR"
	// (tpm/simulator.Open, wired by main); nil: not built in.
	Simulator func(dir string) (Transport, error)
	// Create lets Open create the signing key and data key when the state
	// dir has none (`edgeseal tpm enroll`, `edgeseal tpm recover`).
	// Without it a state dir without keys is *NotEnrolledError.
	Create bool
	// DataKey, with Create, is the value a new data key seals (the key
	// recovered from the recovery wrap); nil: 32 random bytes.
	DataKey []byte
	// PCRPolicy, when set, binds the keys Open creates to the operator's
	// PCR-policy key (TPM2_PolicyAuthorize) instead of the current PCR
	// values. Keys that exist keep their binding.
	PCRPolicy *PCRPolicy
}

// Identity is the public material of a device's TPM keys, what enrollment
// sends to the archive and what bundles carry.
type Identity struct {
	EKPublic      []byte         // PKIX DER of the EK public key
	EKCert        []byte         // DER, nil if none
	AKPublic      []byte         // TPMT_PUBLIC
	SigningPublic []byte         // TPMT_PUBLIC
	Certify       Attestation    // AK's TPM2_Certify of the signing key
	PCRs          []int          // PCRs the signing key is bound to
	PCRValues     map[int][]byte // values the signing key is bound to
	PolicyDigest  []byte         // signing key authPolicy: PolicyPCR(PCRValues), or PolicyAuthorize(PCR policy key, PCRPolicyRef)
	KeyID         string         // "sha256:<hex of SHA-256(SigningPublic)>"
	// PCRPolicyKey is the PKIX DER of the operator's PCR-policy key the
	// signing key is bound to, nil for a key bound to fixed PCR values
	// (PCRValues are then the values at creation); PCRPolicyRef its
	// policyRef.
	PCRPolicyKey []byte
	PCRPolicyRef []byte
}

// Attestation is a TPMS_ATTEST and the TPMT_SIGNATURE over it.
type Attestation struct{ Attest, Signature []byte }

// Quote is the AK's quote of PCRs with a nonce as qualifyingData.
type Quote struct {
	Attest, Signature []byte // TPMS_ATTEST, TPMT_SIGNATURE
	PCRs              []int
	Values            map[int][]byte
	Files             QuoteFiles // tpm2_checkquote layout
}

// QuoteFiles are the quote in the files tpm2_checkquote reads: -m, -s, -f.
type QuoteFiles struct{ Msg, Sig, PCRs []byte }

// TPM is an open TPM with edgeseal's keys loaded. Its methods are safe for
// concurrent use; TPM commands are serialised.
type TPM struct {
	spec      Spec
	log       *slog.Logger
	stateDir  string
	pcrs      []int // quote selection
	nvIndex   tpm2.TPMHandle
	simulated bool

	create     bool   // Options.Create
	newDataKey []byte // Options.DataKey
	// createdDataKey is the value of the data key this Open created (nil
	// when it loaded one); see CreatedDataKey.
	createdDataKey []byte

	sem chan struct{} // held while talking to the TPM
	tr  Transport     // nil after Close

	// loaded objects; 0 when not loaded
	ak, sign         tpm2.TPMHandle
	akName, signName tpm2.TPM2BName
	akPub            []byte // TPMT_PUBLIC of the AK, fixed at Open
	signKey          *loadedKey
	dataKey          *loadedKey
	nvName           tpm2.TPM2BName
	id               Identity
	pcrPolicy        *PCRPolicy // for keys created by this TPM
	auth             *authState // PCR authorization in force, nil if none
}

// Open connects to the TPM that spec names ("device:/dev/tpmrm0",
// "swtpm:HOST:PORT", "simulator:DIR"), reloads the keys kept in
// opts.StateDir (or creates them there with opts.Create), and defines the
// NV counter if absent. A state dir without keys is *NotEnrolledError; a
// TPM that no longer holds them (cleared or replaced) is *ClearedError.
func Open(ctx context.Context, spec string, opts Options) (*TPM, error) {
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if opts.StateDir == "" {
		return nil, fmt.Errorf("tpm: open: Options.StateDir is required")
	}
	pcrs := sortedPCRs(opts.PCRs)
	if len(pcrs) == 0 {
		pcrs = slices.Clone(DefaultPCRs)
	}
	if err := attest.CheckSelection(pcrs); err != nil {
		return nil, fmt.Errorf("tpm: open: %w", err)
	}
	idx := opts.NVIndex
	if idx == 0 {
		idx = DefaultNVIndex
	}
	if idx < 0x01000000 || idx > 0x01FFFFFF {
		return nil, fmt.Errorf("tpm: open: NV index %#x is not an NV index handle", idx)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := prepareStateDir(opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tr, err := dial(ctx, sp, opts)
	if err != nil {
		return nil, err
	}
	t := &TPM{
		spec:     sp,
		log:      log,
		stateDir: opts.StateDir,
		pcrs:     pcrs,
		nvIndex:  tpm2.TPMHandle(idx),
		sem:      make(chan struct{}, 1),
		tr:       tr,

		create:     opts.Create,
		newDataKey: slices.Clone(opts.DataKey),
	}
	if p := opts.PCRPolicy; p != nil {
		t.pcrPolicy = &PCRPolicy{Key: p.Key, Ref: slices.Clone(p.Ref)}
	}
	if ins, ok := tr.(interface{ Insecure() string }); ok {
		t.simulated = true
		log.Error("tpm: INSECURE TPM SIMULATOR IN USE: keys and seals prove nothing", "spec", sp.String(), "why", ins.Insecure())
	} else if sp.Kind == KindSimulator {
		t.simulated = true
		log.Error("tpm: INSECURE TPM SIMULATOR IN USE: keys and seals prove nothing", "spec", sp.String())
	}
	if err := t.init(ctx); err != nil {
		t.flushLoaded()
		_ = tr.Close()
		return nil, err
	}
	log.Info("tpm: open", "spec", sp.String(), "key_id", t.id.KeyID, "pcrs", t.id.PCRs, "nv_index", fmt.Sprintf("%#x", idx))
	return t, nil
}

// init runs Startup where needed and brings the key hierarchy up.
func (t *TPM) init(ctx context.Context) error {
	if t.spec.Kind == KindSwtpm {
		// swtpm may or may not have been started; a second Startup
		// answers TPM_RC_INITIALIZE, which is fine.
		if _, err := (tpm2.Startup{StartupType: tpm2.TPMSUClear}).Execute(t.tr); err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
			return fmt.Errorf("tpm: startup: %w", err)
		}
		if err := t.flushStale(); err != nil {
			return err
		}
	}
	if err := t.initEK(ctx); err != nil {
		return err
	}
	if err := t.initKeys(ctx); err != nil {
		return err
	}
	if err := t.ensureAK(); err != nil {
		return err
	}
	if err := t.checkIdentity(); err != nil {
		return err
	}
	if !t.certifyValid() {
		t.log.Warn("tpm: saved certification of the signing key does not verify under the AK; certifying again")
		if err := t.certifySigning(); err != nil {
			return err
		}
	}
	if err := t.initCounter(ctx); err != nil {
		return err
	}
	t.id.AKPublic = slices.Clone(t.akPub)
	t.setSigningIdentity()
	return nil
}

// setSigningIdentity fills the signing key's part of the identity.
func (t *TPM) setSigningIdentity() {
	sk := t.signKey
	sum := sha256.Sum256(sk.file.Public)
	t.id.SigningPublic = slices.Clone(sk.file.Public)
	t.id.Certify = Attestation{Attest: slices.Clone(sk.file.CertifyAttest), Signature: slices.Clone(sk.file.CertifySig)}
	t.id.PCRs = slices.Clone(sk.file.PCRs)
	t.id.PCRValues = cloneValues(sk.file.PCRValues)
	t.id.PolicyDigest = slices.Clone(sk.policy)
	t.id.KeyID = "sha256:" + hex.EncodeToString(sum[:])
	t.id.PCRPolicyKey, t.id.PCRPolicyRef = nil, nil
	if sk.authorized() {
		t.id.PCRPolicyKey, _ = x509.MarshalPKIXPublicKey(sk.pkey)
		t.id.PCRPolicyRef = slices.Clone(sk.file.PolicyRef)
	}
}

// Identity returns the public material of the keys.
func (t *TPM) Identity() Identity {
	id := t.id
	id.EKPublic = slices.Clone(id.EKPublic)
	id.EKCert = slices.Clone(id.EKCert)
	id.AKPublic = slices.Clone(id.AKPublic)
	id.SigningPublic = slices.Clone(id.SigningPublic)
	id.Certify = Attestation{Attest: slices.Clone(id.Certify.Attest), Signature: slices.Clone(id.Certify.Signature)}
	id.PCRs = slices.Clone(id.PCRs)
	id.PCRValues = cloneValues(id.PCRValues)
	id.PolicyDigest = slices.Clone(id.PolicyDigest)
	id.PCRPolicyKey = slices.Clone(id.PCRPolicyKey)
	id.PCRPolicyRef = slices.Clone(id.PCRPolicyRef)
	return id
}

// Simulated reports whether the TPM is the insecure in-process simulator.
func (t *TPM) Simulated() bool { return t.simulated }

// lock takes the command lock, or fails when ctx ends first or t is closed.
func (t *TPM) lock(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.tr == nil {
		<-t.sem
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		<-t.sem
		return err
	}
	return nil
}

func (t *TPM) unlock() { <-t.sem }

// Close flushes the loaded keys and closes the transport.
func (t *TPM) Close() error {
	t.sem <- struct{}{}
	defer func() { <-t.sem }()
	if t.tr == nil {
		return ErrClosed
	}
	errFlush := t.flushLoaded()
	err := t.tr.Close()
	t.tr = nil
	clear(t.createdDataKey)
	t.createdDataKey = nil
	if err != nil {
		return fmt.Errorf("tpm: close: %w", err)
	}
	return errFlush
}

// flushLoaded flushes the AK and the signing key if they are loaded.
func (t *TPM) flushLoaded() error {
	var errs []error
	if t.ak != 0 {
		errs = append(errs, t.flush(t.ak))
		t.ak = 0
	}
	if t.sign != 0 {
		errs = append(errs, t.flush(t.sign))
		t.sign = 0
	}
	return errors.Join(errs...)
}

func (t *TPM) flush(h tpm2.TPMHandle) error {
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t.tr); err != nil {
		return fmt.Errorf("tpm: flush %#x: %w", uint32(h), err)
	}
	return nil
}
