// Package payloadcipher is the end-to-end encryption of export payloads
// (docs/formats.md, "Payload encryption"): each payload is sealed with
// HPKE base mode (RFC 9180, crypto/hpke) to the archive's content key,
// single-shot, no aad, the info binding it to its record. The ciphertext
// file is enc ‖ AEAD ciphertext exactly as hpke.Seal returns it.
//
// The package is pure format and crypto over bytes: the suite ids a
// record names (Cipher), the info (Info), sealing and opening, the strict
// split of a ciphertext file (Split) and the content key files. The
// record that carries a Cipher is bundle/custody's; the signed
// announcement of a content key is bundle/archivesig's.
package payloadcipher
