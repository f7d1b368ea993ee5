// Package agent is the site daemon's core: it takes exports (Ingest,
// IngestBatch) from the local API and the spool folder, checks them against
// the principal's roles and the policy, journals every export and every
// refused attempt (export.rejected), seals the journal with the TPM at
// checkpoints, writes bundles to the outbox, and reports export status with
// inclusion proofs and the agent's status.
//
// A repeated export id is never journaled twice: each export record is
// written under the journal key "export/<id>", and a repeat answers the
// original receipt.
//
// ArchiveKeyring follows the archive's key rotations: an announcement a
// reply carries, signed by a key the agent trusts, is journaled as an
// `archive.key` record and kept in <data_dir>/archive-keys.json before a
// reply signed by the new key is accepted.
package agent
