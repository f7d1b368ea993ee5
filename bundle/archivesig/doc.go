// Package archivesig holds what an archive signs with its Ed25519 key:
// the Receipt for a stored bundle (SignReceipt, ParseReceipt,
// VerifyReceipt: the bundle's digest and checkpoint, its index in the
// archive's log, the inclusion proof and the archive's log checkpoint),
// the ArchiveKeyAnnouncement of a key rotation signed by both the old and
// the new key (SignArchiveKey, ParseArchiveKey; docs/archive-keys.md), the
// KeyChainFile a device pins, and ArchiveKeys, which follows an archive's
// rotations and verifies receipts under the key in force.
//
// It does not keep the archive's log or keys (package archive) and does
// not define the archive's other signed reply, the rejection
// (sync.Rejection).
package archivesig
