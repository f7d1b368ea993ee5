// Package agent is the site daemon: it journals custody events, seals the
// journal with the TPM at checkpoints and writes bundles to the outbox.
package agent
