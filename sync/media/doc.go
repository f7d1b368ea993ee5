// Package media is the layout of a removable medium that carries bundles
// from an agent without a network to the archive and the archive's answers
// back.
//
// # Layout
//
// A medium is one folder:
//
//	<outbox id>.bundle.tar   bundles written by the agent (`edgeseal bundles
//	                         export`): the outbox entry's bytes, unchanged
//	index.json               written by the agent after the bundles (Index):
//	                         what the folder carries, for the archive's
//	                         operator and for checks; the bundles themselves
//	                         are self-describing
//	receipts/<f>.receipt.json    written by the archive (`edgeseal archive
//	receipts/<f>.rejection.json  import`) for bundle file <f>.tar: the signed
//	                             receipt, or the signed rejection
//
// The agent takes the answers back with `edgeseal bundles import-receipts`
// (ImportReceipts): a receipt that verifies against the archive's key and
// names a bundle of its outbox is journaled, and only then the outbox entry
// is deleted; a rejection is reported and the entry stays.
//
// # Reading a medium
//
// Whatever is on a medium is hostile input: it was out of both ends' hands.
// Both ends read it by these rules:
//
//   - names come only from the folder's own listing, never from file
//     contents; a listing stops after MaxEntries entries (*TooManyError);
//     the names the agent writes are validated (ValidID);
//   - sizes are bounded: a bundle file is read up to the limit the reader
//     gives (the archive: its bundle limits), a reply file up to
//     MaxReplySize;
//   - no symbolic links: a bundle file or a receipts folder that is a link
//     is refused (*SymlinkError) before anything is taken or written, a
//     file is checked to be the one listed when it is opened, and reply
//     files that are not regular files are skipped.
//
// Errors of the reading functions (BundleFiles, PrepareReplies,
// ReadBundle, ListReplies, ReadReply) carry no prefix: the caller names
// its operation (the archive's import, the agent's import-receipts).
// Export and ImportReceipts are those operations on the agent's side and
// prefix their own errors ("bundles export:", "bundles import-receipts:").
package media
