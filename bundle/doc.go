// Package bundle is the sealed bundle: the BagIt bag written as one
// deterministic tar (Bundle, Write, Read, ReadBytes), its manifests, the
// in-toto Statement whose SealPredicate the seal signs, and Seal, which
// builds a bundle from records, payloads, a checkpoint and TPM evidence.
// It is pure code over bytes; TPM structures are handled by tpm/attest.
// It does not verify a bundle (bundle/verify does) and does not define
// the records, checkpoints or envelopes it carries (the packages below).
//
// The formats a bundle carries live in packages of their own, each small
// enough to read alone:
//
//	bundle/wire        what every format shares: FormatError and the other
//	                   errors, "sha256:<hex>" hashes, times, device names
//	bundle/dsse        DSSE envelopes (PAE, sign, parse, verify)
//	bundle/merkle      RFC 6962 tree hashes, proofs, compact ranges, and the
//	                   C2SP checkpoint that commits to a tree
//	bundle/custody     custody records as RFC 8785 canonical JSON, their
//	                   bodies (exports, key records), the device's TPM Identity
//	bundle/canonjson   RFC 8785 canonicalization and the canonical-form
//	                   check the records use
//	bundle/archivesig  what an archive signs: receipts, key announcements,
//	                   key chain files, and ArchiveKeys that follows rotations
//	bundle/trustfile   a device's trust file and the operator's signed PCR
//	                   authorizations
//	bundle/verify      the offline verification of a bundle: Verify, Report,
//	                   the check names and the State carried to the next bundle
//	bundle/bundletest  chains of valid bundles from a software TPM, and the
//	                   tamper table
//
// # Layout
//
// A Bundle is a BagIt 1.0 bag written as one deterministic tar:
//
//	bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
//	data/records.jsonl            one canonical record per line
//	data/payloads/<hex>[.hpke]    export payloads by SHA-256 (.hpke: a ciphertext, bundle/payloadcipher)
//	seal.dsse.json                the signed statement
//	attestation/quote.{msg,sig,pcrs}  as tpm2_checkquote reads them
//	keys/signing.pub keys/ak.pub  TPMT_PUBLIC
//	keys/ak.pem keys/certify.{msg,sig} keys/ek.pub [keys/ek.crt]
//	keys/signing.pem              format 2: the signing key, PEM SPKI
//
// # Seal
//
// A seal is a DSSE envelope over an in-toto Statement v1 whose
// SealPredicate binds the checkpoint, the previous checkpoint with the
// consistency proof and compact range between them, the TPM NV counter,
// clock and quote (nonce = SHA-256 of the checkpoint) and the signing key
// id; the signature is DER ECDSA over SHA-256(PAE).
//
// Bundle format 2 (predicate type SealPredicateTypeV2, unique.go) makes a
// verified bundle's bytes unique for its checkpoint: the statement's
// subjects name every file but the payloads (named by their digests), the
// two manifests and the seal, the envelope holds exactly one low-s
// signature (CheckSealSig), and keys/signing.pem carries the signing key
// for stock DSSE verifiers. Format 1 bundles still verify.
package bundle
