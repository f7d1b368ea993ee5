// Package verify checks a bundle offline. Verify runs every check in
// CheckNames on the bytes present and reports each by a stable name, so
// that a tamperer who recomputes the BagIt manifests, or who holds the
// device and re-signs, is still named by the check that catches the
// change. Checks whose input did not decode are reported as Skipped (and
// failed). A passing Report carries the State the next bundle of the
// device is verified against (NV counter, TPM clock, last checkpoint, last
// leaf and time, the signing-key chain, and for a version 2 trust the
// golden PCR values in force, which valid authorization records replace
// along the chain).
//
// # Encrypted payloads
//
// An export record with payloadCipher names a ciphertext file
// (data/payloads/<hex of its SHA-256>.hpke) instead of the plaintext.
// Verify needs no private key: payloads.digest checks the ciphertext's
// digest and size, payload.cipher refuses an unknown suite by name, a
// ciphertext two records name and one too short for its suite. A
// ciphertext traded between two records of one bundle is found only by
// whoever holds the content key (the archive's archive.decrypt).
//
// It decides; it does not parse the formats (the bundle/... packages do)
// or store anything: the caller keeps the State between bundles.
//
// # Signing keys
//
// Verify starts from the trust file's signing key, or the chain
// State.Keys carries, and applies the key.create, key.rotate and
// key.revoke records in record order (check keys.chain): a rotation
// signed by the key in force, whose new key the trusted AK certified, puts
// the new key in force, for the seal of its own bundle too; keys.trusted
// accepts only the key in force.
package verify
