// Package evidence builds and checks evidence packs: BagIt 1.0 bags
// (RFC 8493) holding the proofs of a set of exports (bundle/proof), the
// trust files of their devices, the archive's key and the signed archive
// checkpoints their receipts name with the consistency proofs between
// them, the signed policy versions the exports name, a W3C PROV-O lineage
// document in JSON-LD (prov.jsonld) and VERIFY.md, whose commands check the
// pack with standard tools (sha256sum, openssl, tpm2_checkquote)
// (docs/formats.md, "Evidence packs").
//
// Build assembles a Pack in memory from proofs; Pack.WriteDir writes it as
// a folder. ReadDir reads a folder back within bounds, refusing links and
// anything but regular files and folders, and Verify checks a pack whole:
// the bag, its index, every proof, the files the standard tools read
// against the proofs, the archive checkpoints and their consistency, the
// policies, the lineage document, and the decrypted payloads the archive
// may add for encrypted exports (Input.Plaintexts, "plaintext" beside the
// proof, checked against the record: pack.plaintext). Pack.WriteTar is
// the tar stream the archive serves and a sealed pack (bundle/sealedpack)
// seals.
//
// Sources are what the proofs are built from offline (`edgeseal proof`
// and `edgeseal evidence`): bundle files and folders, the archive's
// receipts, trust files and the archive key; they select exports by id
// (Find), by device and time (ByTime) or by the hold statements of a
// legal-hold case (ByCase), and give each the proof.Input it is proven
// from. RecordBodies, the policy.change and tpm.pcrs.authorized bodies of
// a bundle, is shared with the archive's own proofs.
package evidence
