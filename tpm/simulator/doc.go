// Package simulator opens the in-process Microsoft TPM 2.0 reference
// simulator (from go-tpm-tools) for "simulator:DIR" specs. It is INSECURE:
// its hierarchy seeds come from DIR/seed, a file anyone who can read it can
// use to recreate every key. It is for development and tests only.
//
// The simulator's state lives in the process. What DIR keeps makes it
// behave like one TPM across process restarts:
//
//   - DIR/seed: the hierarchy seeds, so the same primary keys (EK, SRK,
//     AK) come back after a restart.
//   - DIR/clockinfo.json (ClockInfo, version 1): the highest reset count,
//     restart count and clock (ms) the simulator has shown. Within one
//     directory these only move forward, as a TPM's do: each Open is a
//     reboot. It power-cycles the simulator (a TPM Reset each, about a
//     tenth of a millisecond) until its reset count is above the recorded
//     one, and sets the clock past the recorded clock (TPM2_ClockSet). The
//     record is written durably (temp file, fsync, rename, directory
//     fsync) at Open, at Sim.Reset, at Close and after every command whose
//     signed response carries the clock (TPM2_Quote, the certify commands,
//     TPM2_GetTime, the audit digests) before that response is returned:
//     a process killed at any point never lets a later start show lower
//     counts or an earlier clock than a quote that left it. A record that
//     does not parse stops Open (*tpm.StateError); a reset count above
//     MaxResetCount asks for a new directory.
//
// NV indices and PCRs are forgotten at each start (package tpm restores
// its NV counter from its own state directory). Only one simulator can be
// open in a process at a time; a second Open fails with ErrBusy. Without
// cgo, Open returns ErrNotBuilt.
package simulator
