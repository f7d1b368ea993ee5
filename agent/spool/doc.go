// Package spool ingests exports dropped as files into a folder, for tools
// that can only write files.
//
// An export is a pair: the data file NAME and its sidecar NAME.meta.json,
// a JSON object with the fields of the API's JSON export body (workflow,
// app, purpose, schema, classification, retention, destination, id,
// media_type) and principal, which must name the principal the spool is
// trusted as. A pair that has been ingested moves to done/ beside its
// receipt NAME.receipt.json, and the data file is then deleted from done/
// (Options.KeepDonePayloads keeps it): the journal holds the payload, so
// no plaintext copy stays on the site; a refused pair moves to rejected/ beside
// NAME.error.json naming the error. Both are created in the spool folder.
//
// # Which files are taken
//
// A partly written file is never taken. A pair is taken only when
//
//   - the sidecar exists and is not older than the data file (the sidecar
//     was written last), or the data file's ctime is later than its mtime
//     (it was renamed, or linked, in after its last write); and
//   - the data file and the sidecar showed the same size, mtime and ctime
//     at two successive polls.
//
// Dotfiles, *.tmp and *.part files are ignored, so writing to "NAME.part"
// (or ".NAME") and renaming to NAME is always safe. A sidecar is written in
// one go or renamed in; every name ending in .meta.json is a sidecar. A
// pair that keeps changing is left alone until it settles.
//
// # Only regular files are read
//
// Whoever writes the folder must not make the agent read a file they
// cannot: a symbolic or hard link to it, swapped in at any moment. Both
// files of a pair are opened relative to the folder's descriptor with
// O_NOFOLLOW and O_NONBLOCK, and the descriptor must be a regular file
// with exactly one link whose device, inode, size and mtime are those the
// poll saw; the bytes journaled are read from that descriptor, and the
// pair is moved with renameat, checking that the inode moved is the one
// read (*SwappedError otherwise); result files are written relative to
// the descriptor of done/ or rejected/, opened O_NOFOLLOW, so a subfolder
// swapped for a link is never written through. A pair whose data file or sidecar is a
// symbolic link, a hard link, a FIFO, a socket, a device or a directory
// is refused unread (*UnsafeFileError, code unsafe_file, journaled as
// export.rejected without a digest) and the entry itself, never its
// target, moves to rejected/. A regular file replaced since the poll is
// left for the next one. [Options.Mode] and [Options.Group] (agent config
// spool.mode and spool.group) set the folder's permissions at start.
//
// # Who the files are from
//
// Anyone who can write to the spool folder can hand in exports, so the
// folder is trusted as exactly one principal of the daemon config, given
// as [Options.Principal]: the daemon passes the principal the config key
// spool.principal names, which must hold the exporter role (New refuses
// one without); its bearer token is never used by the folder. A sidecar
// must name that principal; a sidecar naming any other is rejected (a file
// cannot claim to come from n8n-prod). The policy then checks that
// principal against the workflow as for any API call, so a workflow takes
// spool files only if it lists that principal. The folder's permissions
// are the access control: make it writable only by the tools trusted to
// export as that principal.
//
// # Crash safety and idempotency
//
// Each pair has a stable export id: the sidecar's id, or else
// "spool-" and 32 hex digits of SHA-256 over the file name and the data's
// digest. The receipt is written durably (temp file, fsync, rename, fsync
// directory) before the pair is moved, and the moves are synced. After a
// crash between journaling and moving, the pair is ingested again, the
// journal answers the same id as a duplicate with the original receipt, and
// the pair moves to done/ as before, into the slot whose receipt records
// that id (the receipt is kept as first written). A failed system call
// (an open, rename, unlink or directory sync the disk refuses) is handled
// as a crash at that point: the pair, or what is left of it, is finished
// by the next poll, or at the next start. A sidecar left behind after its
// data file moved is moved after it, at start (before payload copies are
// dropped) and at each poll, into the slot whose result file records the
// sidecar's id (or, for a sidecar without one, holds the data file or a
// receipt whose digest derives the id); a temp file of a result file is
// removed at start; a payload copy a failed move left in done/ is dropped
// by the next poll. A lookup in done/ or rejected/ the disk fails is an
// error (the pair waits), never a name taken: a pair is never moved under
// another name than its receipt's. A crash after a rejection was journaled
// but before the pair moved journals the rejection once more: attempts are
// custody too.
//
// Names already taken in done/ or rejected/ (the same file name dropped
// again) get a suffix: NAME~2, NAME~3, ...
//
// # Errors
//
// The [Ingester] refuses an export for good with an error that is (by
// errors.As) a *[RejectError]; the pair then moves to rejected/. Any other
// error (journal busy, disk nearly full, closed) is transient: the pair
// stays, and the watcher retries with capped exponential backoff, logging
// once when ingest starts failing and once when it recovers.
package spool
