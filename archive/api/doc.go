// Package api is the archive's read API: HTTPS, JSON, versioned under
// /v1 (docs/archive-api.md is the contract). It searches the export index,
// serves records, payloads, bundles, receipts, single-export proofs,
// evidence packs (a tar stream, with the archive log's consistency proofs)
// and the archive log's checkpoint and consistency proofs to auditors
// (proof.go), the fleet
// and per-day counts to operators and policy administrators, the access
// log, and a server-sent event stream.
//
// Every /v1 call needs a session: local accounts (Users, the users file, with
// argon2id password hashes) sign in with POST /v1/session and get an
// opaque random token, sent back as Authorization: Bearer or in the
// HttpOnly, SameSite=Strict session cookie; sessions live in memory and
// expire Options.SessionTTL after sign-in. With Options.OIDC (NewOIDC),
// browsers also sign in from the organization's identity provider
// (oidc.go: authorization code flow with PKCE, verified ID token, roles
// mapped from a claim) as "oidc:NAME". Roles decide what a session
// may read (auditor, operator, policy-admin); an account with none of
// them (an exporter) cannot sign in.
//
// The archive log is also served under /log/ as C2SP tlog-tiles
// (logtiles.go) for standard tlog clients, monitors and witnesses: its
// signed checkpoint and hash tiles need no session (they disclose only
// hashes) and are not access-logged; its entry bundles, which name
// devices and bundles, need an auditor or operator session like /v1.
//
// Payloads the agents sealed to the archive's content key are served
// sealed; with decrypt=1 and a why (case or reason) a payload or an
// evidence pack is decrypted for a session whose roles Options.Decrypt
// allows for the export's classification (decrypt.go), and each
// decryption and each refusal is a decrypt entry of the access log,
// appended before anything is sent. The decryptor role grants nothing
// alone.
//
// Every authenticated call appends an access entry to the archive's
// access log (archive.RecordAccess) before its answer is written; a call
// whose entry cannot be appended is refused (503). Server.Handle mounts
// other handlers (pages, packs) behind the same session, role check and
// access entry.
//
// Outside bytes are bounded: a query string of 4096 bytes, parameters of
// 256 bytes given once and known to the endpoint, a sign-in body of 4096
// bytes; each parser has a fuzz test.
package api
