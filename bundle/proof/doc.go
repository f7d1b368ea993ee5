// Package proof is the proof of one export, alone: the export's custody
// record and the related records of that export, its payload, an RFC 6962
// inclusion proof of each record against the checkpoint the device sealed,
// the seal envelope (whose statement names the other files of the bundle by
// digest only), the TPM quote and key files, the device's trust file, and
// the archive's receipt for the bundle with its own inclusion proof in the
// archive's signed log checkpoint (docs/formats.md, "Export proofs").
//
// Build makes a Proof from a bundle's bytes and its receipt, as an archive
// or an auditor holds them; Verify checks one offline and reports every
// check by a stable name, like bundle/verify does for a whole bundle. A
// proof carries no record or payload of any other export: the rest of the
// bundle is present only as the digests the seal statement lists and the
// sibling hashes of the inclusion proofs. The payload of an encrypted
// export is its ciphertext file, checked against the record's
// payloadCipher; its plaintext never enters a proof.
//
// It is pure code over bytes; it never touches a TPM, a journal or the
// archive's store.
package proof
