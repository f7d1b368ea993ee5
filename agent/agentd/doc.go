// Package agentd runs the agent daemon: Run opens the TPM, the journal,
// the policy and the agent core, serves the local API (agent/api), seals
// in the background, watches the spool folder (agent/spool), syncs the
// outbox to the archive over MQTT (sync), serves /metrics and talks to
// systemd, until its context is cancelled; then it drains in-flight
// requests (answering new ones 503 not_ready with Retry-After), seals
// what is pending and closes everything in order, its API listeners last.
//
// Beside Run it holds what the agent's commands share with the daemon:
// the MQTT link's TLS and archive keys (SyncTLS, ReadArchiveKey,
// CurrentArchiveKey, ImportArchiveKeys), the enrollment request and the
// answer to the archive's credential challenge (EnrollRequest,
// AnswerChallenge, EnrollOptions), and the way out of a start refused
// because the TPM changed (StartHint).
//
// It is a package of its own because it wires the agent core together
// with the packages built on it (agent/api, agent/spool); the edgeseal
// command only parses flags and calls Run, and tests call Run without a
// process. The in-process TPM simulator needs cgo, so the caller links
// it in and passes it as Options.Simulator.
package agentd
