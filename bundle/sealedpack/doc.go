// Package sealedpack seals an evidence pack to an auditor's own HPKE key
// (docs/formats.md, "Sealed evidence packs"): a pack that leaves the
// archive with decrypted payloads travels and rests encrypted to the one
// person who asked for it, with the suite of the payloads
// (MLKEM768X25519, HKDF-SHA256, AES-256-GCM).
//
// A sealed file is a header (magic, suite ids, the recipient's key id,
// the HPKE encapsulated key) and the pack's tar stream cut into chunks,
// each sealed in one HPKE context in order (the context's sequence
// numbers bind each chunk to its place) with a final flag as associated
// data: a chunk changed, dropped, moved or swapped, a file cut short or
// extended, and a header changed (the header is the HPKE info) all fail
// to open.
//
// The auditor's key files are the shared HPKE key-file format
// (internal/hpkekey) with their own PEM types.
package sealedpack
