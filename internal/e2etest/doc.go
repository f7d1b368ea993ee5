// Package e2etest holds the fixtures the system tests of more than one
// package share: the archive daemon (archived.Run) running in the test's
// process, a device's sync publisher with the agent's archive keyring, an
// empty outbox journal, a device's simulator TPM and encrypted journal, a
// journaled refusal read back, a test chain's DEVICE.json and its
// enrollment, and a log buffer safe for concurrent writers.
//
// It is imported by tests only (the e2e system tests, the package tests
// of archive/archived, agent/spool and sync, and the drain benchmark).
package e2etest
