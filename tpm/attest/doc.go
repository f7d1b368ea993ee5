// Package attest verifies TPM 2.0 structures without a TPM: public areas
// (TPMT_PUBLIC), certifications and quotes (TPMS_ATTEST with a
// TPMT_SIGNATURE), PolicyPCR and PolicyAuthorize digests (with the public
// area an operator's PCR-policy key is loaded under) and the
// tpm2_checkquote PCR file; and it makes the credential of
// TPM2_MakeCredential for an EK and an AK (MakeCredential), which only the
// TPM holding both can activate.
//
// Everything here is pure code over bytes. Only ECC P-256 keys with ECDSA
// over SHA-256 are accepted; the parsers are strict: trailing bytes and
// non-canonical encodings are rejected.
package attest
