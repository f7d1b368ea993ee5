// Package store is the custody journal: records keyed by sequence, payload
// bytes by digest, the RFC 6962 Merkle log kept as stored hashes, sealed
// checkpoints and the bundle outbox. One sequencer goroutine group-commits
// concurrent appends and answers each caller only after its record is synced.
// It is the only package that imports badger.
package store
