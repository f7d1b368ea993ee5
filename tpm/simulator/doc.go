// Package simulator opens the in-process Microsoft TPM 2.0 reference
// simulator (from go-tpm-tools) for "simulator:DIR" specs. It is INSECURE:
// its hierarchy seeds come from DIR/seed, a file anyone who can read it can
// use to recreate every key. It is for development and tests only.
//
// The simulator keeps its hierarchy seeds (so the same primary keys come
// back after a restart) but forgets NV indices and PCRs; package tpm
// restores the NV counter from its state directory. Only one simulator can
// be open in a process at a time; a second Open fails with ErrBusy.
// Without cgo, Open returns ErrNotBuilt.
package simulator
