// Package doctor holds the checks of `edgeseal doctor`, which an operator
// runs on a site to see in one go whether its agent can do its work: the
// TPM and its keys, the PCRs against the values the keys are bound to (and
// against the enrolled DEVICE.json), the stored PCR authorization, the
// recovery wrap of the data key, the journal's tail (agent.VerifyTail) and
// last checkpoint, the outbox and the last delivery, the broker reached
// with the configured certificates, the clock and the disk.
//
// With the agent stopped the checks open the TPM and the journal
// themselves; while it runs (it holds the journal) they ask its
// /v1/status over the local API socket (agent/api) instead. The command
// decides which applies; each check prints one line "LEVEL  NAME: MSG"
// and, when something is to be done, a "fix:" line.
package doctor
