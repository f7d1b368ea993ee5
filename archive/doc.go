// Package archive is the central receiver: it verifies bundles, stores them
// write-once, keeps a signed log and answers with receipts.
package archive
