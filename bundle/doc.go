// Package bundle holds the formats that the agent, the archive and the
// verifier share (records, checkpoints, DSSE seals, BagIt bundles, receipts)
// and the offline verification of a bundle. It is pure code over bytes.
package bundle
