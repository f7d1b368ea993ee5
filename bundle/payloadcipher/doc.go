// Package payloadcipher is the end-to-end encryption of export payloads
// (docs/formats.md, "Payload encryption"), with HPKE base mode (RFC
// 9180, crypto/hpke) to the archive's content key. Version 1 (Seal,
// Open) seals each payload single-shot, no aad, the info binding it to
// its record: the ciphertext file is enc ‖ AEAD ciphertext exactly as
// hpke.Seal returns it. Version 2 (Sealer, OpenV2), what agents seal,
// shares one HPKE context among the payloads of a window and encrypts
// each with AES-256-GCM under a key exported for its record: the file
// is the window's enc ‖ GCM ciphertext. OpenRecord opens both; an
// Opener keeps decapsulated windows so a window costs one
// decapsulation.
//
// The package is pure format and crypto over bytes: the suite ids a
// record names (Cipher), the info (Info), sealing and opening, the strict
// split of a ciphertext file (Split) and the content key files. The
// record that carries a Cipher is bundle/custody's; the signed
// announcement of a content key is bundle/archivesig's.
package payloadcipher
