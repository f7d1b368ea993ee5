// Package tpm is edgeseal's only door to a TPM 2.0: transports (a kernel
// resource manager device, swtpm over TCP, and the in-process simulator from
// package tpm/simulator), the key hierarchy of the design (EK, AK, a
// PCR-bound signing key certified by the AK, a PCR-sealed data key, an NV
// counter), and the commands a seal needs. It is the only package that
// imports go-tpm.
//
// Keys. The EK (TCG ECC P-256 template) and the AK (restricted ECDSA P-256
// signing primary in the endorsement hierarchy, so quote clock fields are
// not obfuscated) are primaries: the same on every Open. The signing key
// (non-restricted ECDSA P-256, fixedTPM, fixedParent, userWithAuth clear,
// authPolicy = PolicyPCR over the configured PCRs, or with
// Options.PCRPolicy PolicyAuthorize by the operator's PCR-policy key) and
// the data key (32 random bytes sealed under the same policy) are
// children of the ECC SRK;
// their blobs live in Options.StateDir (signing-key.json, data-key.json),
// created only by an Open with Options.Create (enrollment, recovery) and
// only when absent; Open without it on a state dir without keys is
// *NotEnrolledError. tpm-identity.json records the EK and AK the keys
// belong to; a TPM that no longer loads the blobs or has another EK or AK
// (cleared, replaced) is *ClearedError, and only the operator's recovery
// wrap of the data key (package tpm/recovery) brings the journal back.
// The signing key file also keeps the AK's TPM2_Certify of it; Open
// certifies again if that no longer verifies.
//
// Slots. swtpm and the simulator have no resource manager and 3 object
// slots: between calls only the AK and the signing key are loaded, every
// other object and every policy session is flushed before a call returns,
// and Close flushes the rest. Commands are serialised.
//
// Commands per seal: IncrementCounter 2 (NV_Increment, NV_Read), Quote 2
// (PCR_Read, Quote), Sign 3 (StartAuthSession, PolicyPCR, Sign), or 4
// with PolicyAuthorize.
//
// PCR changes. When the bound PCRs move, Sign and DataKey return
// *PCRMismatchError; nothing falls back to a software key.
// RotateSigningKey re-binds the signing key to the current values. Keys
// bound to a PCR-policy key work under the values of the authorization
// Authorize installed (the TPM checks its signature with LoadExternal in
// the owner hierarchy and VerifySignature; the ticket is kept, the key
// flushed at once); without one they return *AuthorizationNeededError.
//
// swtpm. swtpm serves one connection at a time: the transport lets go of
// it after a short idle time, so tpm2-tools can reach the same swtpm
// between seals, and Open flushes the objects a process that died without
// Close left loaded.
//
// Rotation (rotate.go). PrepareRotation creates and certifies a candidate
// signing key (same SRK, same AK, same PCR policy) and saves it as
// signing-key.next.json without touching the key in force, so the old key
// can sign a statement naming the new one; CommitRotation then puts it in
// force with one rename (the old file kept as signing-key.json.old);
// PendingRotation and DiscardRotation let a caller finish or drop a
// rotation a crash interrupted.
//
// NV counter. An orderly counter index at Options.NVIndex, defined when
// absent. The simulator forgets NV when it stops, so for it alone the last
// value is kept in nv-counter.json and restored at Open.
//
// Simulator clock. Package tpm/simulator keeps the simulator's reset
// count and clock moving forward across restarts (see its doc). For any
// simulated TPM, Open also moves the clock past the last quote's, kept in
// sim-clock.json (TPM2_ClockSet only moves it forward).
//
// Credential activation. ActivateCredential recovers the credential of
// an enrollment challenge made for this TPM's EK and AK
// (tpm/attest.MakeCredential at the archive): the EK is created for the
// call, authorised by PolicySecret(endorsement), and flushed before it
// returns.
package tpm
