// Package witness checks an archive's log across devices: it collects the
// archive log checkpoints devices were shown (the archive.checkpoint
// records their bundles seal, the receipts an auditor holds), keeps those
// whose C2SP signed note verifies under a trusted archive key, and detects
// an archive that showed inconsistent logs (docs/auditors.md):
//
//   - archive.fork: two checkpoints of the same size with different roots;
//   - archive.chain: a consistency proof a device was given (witnessFrom,
//     witnessProof) that does not hold between the checkpoint it starts
//     from and the one it leads to, or a device's chain going back;
//   - archive.log: with a copy of the archive's tlog-tiles tree (Mirror),
//     every checkpoint no larger than the copy's own against the tree.
//
// Checkpoints that no proof and no log copy relate are reported as not
// related, never as proven consistent.
package witness
