// Package store is the custody journal: records keyed by sequence, payload
// bytes by digest, the RFC 6962 Merkle log kept as stored hashes, sealed
// checkpoints and the bundle outbox. One sequencer goroutine group-commits
// concurrent appends and answers each caller only after its record is synced.
// It is the only package that imports badger.
//
// # Journal
//
// A record's leaf hash is SHA-256(0x00 || record) (tlog.RecordHash); the
// tree is RFC 6962/9162 and its hashes are addressed in the
// golang.org/x/mod/sumdb/tlog layout, so appending is O(1) amortised and
// roots and proofs are O(log n) reads. Leaf hashes are recomputed from
// the records; the interior hashes a record completes are stored packed
// under one key (hashes.go; journals written before keep a key per hash
// below the size recorded in the layout key). Entry.Build receives each record's
// sequence number and the previous leaf hash (the prev chain; all zero for
// seq 0). Records and hashes are never overwritten or deleted; payload
// bytes can be purged, leaving a tombstone.
//
// # Split payloads
//
// A Payload may name a Prefix: a leading part of its bytes that many
// payloads share (the agent's encrypted payloads start with their payload
// cipher window's encapsulated key, the same ~1.1 KB for up to 1024
// ciphertexts). The prefix is then journaled once, by its SHA-256, and
// the payload as the rest of its bytes and a reference to it; Payload
// joins them and checks the joined bytes against the digest, so readers
// get the same bytes in either shape, and payloads journaled whole (every
// payload of a journal written before) read as before. A new prefix is
// written in the same commit as the first payload naming it and is never
// deleted (payloadsplit.go).
//
// # Idempotency keys
//
// An Entry may carry a Key (at most MaxKeyLen bytes). The sequencer checks
// it against the committed keys and the keys earlier in the same group
// commit; a repeat is not appended (no Build call, no sequence number) and
// answers *DuplicateError with the original seq. A new key is written as
// key -> seq in the same Badger transaction as its record, so after a
// crash both exist or neither does. Lookup maps a key to its seq. Keys
// are never deleted.
//
// The sequencer asks in-memory Bloom filters of the stored idempotency
// keys and payload keys before it reads Badger for a key or a payload:
// "absent" (nearly every new export) needs no read, "maybe" reads as
// before. A payload is in its filter by its whole-shape key whether it
// is stored whole or split, so "absent" holds for both shapes. Open
// starts them from one background scan of the stored keys ('p', 's' and
// 'k'); until it ends every lookup reads (digestfilter.go).
//
// # Durability and atomicity
//
// Each group commit is one Badger transaction holding the records, their
// stored hashes, new payloads and the metadata (size, last leaf); Badger
// replays only complete transactions after a crash, so a commit is applied
// whole or not at all. The sequencer builds the next group while Badger
// syncs the previous one, and answers groups strictly in order, each once
// its own commit and every earlier one are synced (pipeline.go). Badger runs with SyncWrites: the write-ahead log is
// msynced per transaction and the error returned. (db.Sync with SyncWrites
// off is not used: on a value-log rotation it syncs the new file, not the
// one just written.) The patched Badger msyncs a write round's value-log
// entries (records and payloads of 256 bytes or more) while it writes and
// msyncs the write-ahead log, and answers only after both; a crash between
// the two can leave the write-ahead log of an unanswered commit without
// its values, and Open's replay drops that commit and everything logged
// after it (third_party/README.md; TestCrashTornValueLog). A failed
// value-log sync fails the round's commits and is also logged; the journal
// watches its logger for sync errors and fails the commit. After
// any failed commit the journal refuses writes (ErrFailed) until reopened,
// and Failed's channel is closed so the owner can raise the alarm. A
// commit that failed inside Badger (its log write or sync) is never synced
// again: on Linux a failed fsync or msync may have dropped the pages it
// could not write and marked them clean, so a retry would report success
// for bytes that are gone (PostgreSQL's "fsyncgate"). Close then abandons
// Badger's files instead of flushing them; the process is expected to exit
// and the next Open to replay what reached the disk. The daemons do exactly
// that (docs/durability.md).
//
// Open reads the metadata, the last record and the compact range, never
// rescans; it also removes an empty *.vlog or *.mem file a crash can leave
// behind, which badger v4.9.6 itself refuses to open. Badger verifies a
// table block's checksum when it reads the block, not every table at open,
// so Badger's own open work is one index per table plus, after a crash, the
// replay of a few memtable logs bounded by MemTableSize: a journal of a
// million records opens in well under a second, cleanly closed or killed.
// A rotten block fails the reads that need it (*CorruptError), and Scrub,
// which reads every record and hash, finds it.
//
// # Sealing epochs
//
// Checkpoints belong to a sealing epoch (Epoch, 1 at first). StartEpoch,
// for a device whose signing key was lost with its TPM, forgets every
// checkpoint and numbers the next epoch, so the journal is sealed again
// from size 0 under a new key; records are untouched. Open fails with
// ErrLocked while another process (a running agent) has the journal open.
//
// # Ordered index
//
// Index (index.go) is a separate, small durable ordered key-value store
// beside the journals (the archive's export and access indexes): atomic
// synced batches of Put, Delete and counter Add, Get, and Scan of a key
// range ascending or descending with a limit. IndexStore is its contract;
// store/indextest is the conformance suite any other implementation runs.
//
// # Key layout
//
//	'm'                    metadata (version, size, last leaf, checksum)
//	'r' || be64(seq)       record
//	'h' || be64(index)     stored hash, tlog.StoredHashIndex order (journals
//	                       written before packed hashes, below the layout size)
//	'i' || be64(seq)       interior hashes record seq completes, packed
//	'l'                    layout: the size hashes are packed from, be64
//	'p' || digest          payload bytes, whole
//	's' || digest          payload split: 0x01, SHA-256 of its prefix, the
//	                       rest of its bytes
//	'w' || SHA-256(prefix) a prefix that split payloads share
//	't' || digest          payload tombstone
//	'c' || be64(size)      checkpoint
//	'k' || key             idempotency key -> be64(seq), same commit as the record
//	'f'                    format marker
//	'e'                    sealing epoch, be64 (absent: 1)
//
// With an encryption key every value is sealed (AES-256-GCM) and the 'p',
// 's', 'w', 't' and 'k' keys are HMAC names of the digest or key (crypt.go). Outbox
// entries (bundles) are files under Dir/outbox, sealed the same way
// (outbox.go).
//
// # Memory
//
// Badger is tuned for a small device (2 MiB memtables, no block or index
// cache: tables are read from their mappings, two compactors, no
// compression). Badger's table
// builders are plain Go allocations, so the process should run with a soft
// memory limit (GOMEMLIMIT, e.g. 48MiB): without it the collector lets the
// heap reach twice Badger's peak live size during compactions.
package store
