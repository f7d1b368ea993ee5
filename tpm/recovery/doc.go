// Package recovery is the operator's second wrap of a device's data key,
// the 32-byte key that encrypts the agent's journal at rest. The TPM seals
// the data key to PCR values; after a firmware update, a TPM clear or a
// board swap that seal no longer opens, and the recovery wrap is the way
// back.
//
// An operator makes a recovery key pair once (GenerateKey; the private key
// stays offline) and gives the public key to every enrollment. Enrollment
// encrypts the data key to it with HPKE (RFC 9180, crypto/hpke) in base
// mode, suite MLKEM768X25519 / HKDF-SHA256 / AES-256-GCM, and stores the
// result (Wrap) beside the sealed blob in the TPM state directory. The
// HPKE info binds the device name, the AEAD's additional data the
// recovery key id, so a wrap opens only for the device and key it names.
//
// The package is pure: no TPM, no files. The formats are in
// docs/recovery.md.
package recovery
