// Package bundle holds the formats that the agent, the archive and the
// verifier share (records, checkpoints, DSSE seals, BagIt bundles, trust
// files, receipts, archive key announcements) and the offline verification
// of a bundle. It is pure code over bytes; TPM structures are checked
// through tpm/attest. ArchiveKeys follows an archive's key rotations
// (SignArchiveKey, ParseArchiveKey; docs/archive-keys.md).
//
// # Formats
//
// A Record is one custody event, written as RFC 8785 (JCS) canonical JSON
// with integer numbers only; its leaf hash is SHA-256(0x00 || bytes). A
// Checkpoint is a C2SP tlog-checkpoint body with origin
// "edgeseal/<site>/<device>". A seal is a DSSE envelope over an in-toto
// Statement v1 whose SealPredicate binds the checkpoint, the previous
// checkpoint with the consistency proof and compact range between them,
// the TPM NV counter, clock and quote (nonce = SHA-256 of the checkpoint)
// and the signing key id; the signature is DER ECDSA over SHA-256(PAE).
//
// A PCRAuthorization is an operator's signed approval of PCR values for
// one device whose keys are bound with TPM2_PolicyAuthorize to the
// operator's PCR-policy key (a version 2 Trust); the agent journals it as
// a tpm.pcrs.authorized record.
// Bundle format 2 (predicate type SealPredicateTypeV2, unique.go) makes a
// verified bundle's bytes unique for its checkpoint: the statement's
// subjects name every file but the payloads (named by their digests), the
// two manifests and the seal, the envelope holds exactly one low-s
// signature, and keys/signing.pem carries the signing key for stock DSSE
// verifiers. Format 1 bundles still verify.
//
// A Bundle is a BagIt 1.0 bag written as one deterministic tar:
//
//	bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
//	data/records.jsonl            one canonical record per line
//	data/payloads/<hex>[.hpke]    export payloads by SHA-256
//	seal.dsse.json                the signed statement
//	attestation/quote.{msg,sig,pcrs}  as tpm2_checkquote reads them
//	keys/signing.pub keys/ak.pub  TPMT_PUBLIC
//	keys/ak.pem keys/certify.{msg,sig} keys/ek.pub [keys/ek.crt]
//	keys/signing.pem              format 2: the signing key, PEM SPKI
//
// # Verification
//
// Verify runs every check in CheckNames on the bytes present and reports
// each by a stable name, so that a tamperer who recomputes the BagIt
// manifests, or who holds the device and re-signs, is still named by the
// check that catches the change. Checks whose input did not decode are
// reported as Skipped (and failed). A passing Report carries the State the
// next bundle of the device is verified against (NV counter, TPM clock,
// last checkpoint, last leaf and time, the signing-key chain, and for a
// version 2 trust the golden PCR values in force, which valid
// authorization records replace along the chain).
//
// # Signing keys
//
// The key.create, key.rotate and key.revoke records (docs/keys.md) are
// parsed strictly (ParseKeyCreateBody, ParseKeyRotateBody,
// ParseKeyRevokeBody). Verify starts from the trust file's signing key, or
// the chain State.Keys carries, and applies them in record order (check
// keys.chain): a rotation signed by the key in force, whose new key the
// trusted AK certified, puts the new key in force, for the seal of its own
// bundle too; keys.trusted accepts only the key in force.
//
// The subpackage bundletest builds chains of valid bundles with a software
// TPM and holds the tamper table.
package bundle
