// Package tlog is the archive's transparency log behind one small
// interface, Log: append an entry and get its index once it is durable
// and integrated into the Merkle tree, wait for a signed checkpoint that
// covers it, prove inclusion and consistency, read entries back.
//
// The tree is RFC 6962 (leaf SHA-256(0x00 || entry), node
// SHA-256(0x01 || left || right)); checkpoints are C2SP tlog-checkpoint
// bodies in C2SP signed notes, signed by the note signer the caller
// gives (the archive's Ed25519 key, origin = signer name).
//
// Two implementations:
//
//   - Tessera: a Tessera log (github.com/transparency-dev/tessera; this is
//     the only package that imports it). OpenPOSIX puts it on Tessera's
//     POSIX driver, in a directory laid out as C2SP tlog-tiles: Append
//     returns once Tessera's future resolves, i.e. the entry bundle, the
//     tiles it changed and the tree state were written (temp file with
//     O_SYNC, rename, directory fsync) and the entry is integrated.
//     OpenMySQL puts it on Tessera's MySQL driver, in a MySQL or MariaDB
//     database that several processes may append to: Append returns once
//     the transaction holding the entry, its tiles and the tree state
//     committed. Either way the signed checkpoint is published
//     asynchronously, at most every CheckpointInterval, and
//     AwaitCheckpoint waits for it.
//   - NewJournal: the archive's existing log, a store.Journal (Badger) with
//     checkpoints signed on demand, behind the same interface.
//
// Both hash leaves alike, so the same entries make the same tree:
// MigrateToPOSIX copies a journal log into a Tessera one with Tessera's
// migration lifecycle and checks the root, and every checkpoint and
// inclusion proof issued before stays valid.
//
// Handler serves a log's tiles, entry bundles and checkpoint read-only
// over HTTP at the C2SP tlog-tiles paths, so that standard clients,
// monitors and witnesses can follow it; both logs are a Source and serve
// the same bytes for the same entries. It serves only resources the
// published checkpoint commits to, opens files without following
// symbolic links and never lists a directory.
//
// Tessera logs through klog (RouteLibraryLogs sends it to a slog
// logger) and a few lines through slog.Default.
//
// tlogtest holds the conformance suite every Log passes.
package tlog
