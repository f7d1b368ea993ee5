// Package custody is the custody record: one event of a device's journal,
// the leaf of its log. A Record is written as RFC 8785 (JCS) canonical
// JSON with integer numbers only (Record.Marshal; ParseRecord refuses
// anything but the canonical bytes); its leaf hash is merkle.LeafHash of
// those bytes. Its body depends on its type: ExportBody, RejectedBody,
// PurgeBody, the signing-key records key.create, key.rotate and
// key.revoke (docs/keys.md; ParseKeyCreateBody, ParseKeyRotateBody,
// ParseKeyRevokeBody) and the archive key announcement
// (archivesig.ParseArchiveKey).
//
// Identity is a device's public TPM material as records and trust files
// carry it. CheckRecord, RecordPayload and RecordDecoder are the fast
// paths of ParseRecord used where many records are read; RecordTemplate
// is a record marshalled once, into which the journal splices its
// sequence number, previous hash and time.
//
// It does not own the canonical form itself (bundle/canonjson), the log
// the records form (bundle/merkle), or the checks of a chain of records
// and keys across bundles (bundle/verify).
package custody
