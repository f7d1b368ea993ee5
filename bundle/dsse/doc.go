// Package dsse reads and writes DSSE v1 envelopes
// (github.com/secure-systems-lab/dsse): PAE, the pre-authentication
// encoding every signature covers; SignEnvelope; ParseEnvelope, which
// accepts only the canonical JSON it writes; and verification of ECDSA
// P-256 (a device's TPM signing key, DER signature over SHA-256(PAE)) and
// Ed25519 (an archive's key) signatures.
//
// It does not know the payloads: the seal statement is package bundle's,
// receipts and key announcements bundle/archivesig's, the key rotation
// statement bundle/custody's.
package dsse
