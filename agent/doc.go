// Package agent is the site daemon's core: it takes exports (Ingest,
// IngestBatch) from the local API and the spool folder, checks them against
// the principal's roles and the policy, journals every export and every
// refused attempt (export.rejected), seals the journal with the TPM at
// checkpoints, writes bundles to the outbox, and reports export status with
// inclusion proofs and the agent's status.
//
// At every seal attempt it looks for an operator's PCR authorization in the
// TPM state directory (PCRAuthFile) and, when it is new, valid and names
// the values the PCRs hold, journals it (tpm.pcrs.authorized) before
// installing it in the TPM, so sealing resumes after a firmware update.
//
// A repeated export id is never journaled twice: each export record is
// written under the journal key "export/<id>", and a repeat answers the
// original receipt.
//
// Every signing-key operation is a journal record (keys.go): key.create
// for a key the journal does not know, key.rotate and key.revoke for a
// rotation (RotateKey, or on schedule with Options.RotateEvery).
// After a TPM clear or board swap, `edgeseal tpm recover` (agent stopped)
// journals a `key.recover` record (JournalKeyRecover) and starts a new
// sealing epoch (StartEpoch): the outbox's bundles of the lost key move to
// files, the checkpoints are forgotten, and the core seals the journal
// again from record 0 under the new key; receipts of a later epoch are
// journaled under EpochDeliveryKey.
// ArchiveKeyring follows the archive's key rotations: an announcement a
// reply carries, signed by a key the agent trusts, is journaled as an
// `archive.key` record and kept in <data_dir>/archive-keys.json before a
// reply signed by the new key is accepted. LearnContentKey follows the
// archive's content key rotations the same way: the newer announcement a
// receipt carries is journaled as a `content.key` record, kept in
// <data_dir>/content-key.json and sealed to from then on.
//
// The commands that work on a stopped agent open its TPM and journal the
// way the daemon does (OpenTPM, OpenJournal, OpenStopped: the journal's
// lock refuses them while the daemon runs); Recover is `edgeseal tpm
// recover`; VerifyTail checks the journal's last records. The daemon
// itself is package agent/agentd.
package agent
