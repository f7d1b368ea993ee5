// Package api is the agent's local ingest API: a net/http server on a unix
// socket (and optionally loopback TCP with TLS) through which no-code apps
// hand exports to the agent's core.
//
// Client is its typed client (the edgeseal export and doctor commands use
// it): NewClient dials the unix socket, or the TLS endpoint with a CA
// certificate; an answer that is not the call's success is a *StatusError
// with the HTTP status, the error's code, field and message, and
// Retry-After.
//
// # Endpoints
//
//	POST /v1/exports         one export (exporter)                       201, 200 on a repeat, 409 on a conflict
//	POST /v1/exports:batch   NDJSON, one export per line (exporter)      200, per-line NDJSON answers
//	GET  /v1/exports/{id}    status, record, inclusion proof (exporter: its own; auditor)
//	GET  /v1/checkpoint      the latest checkpoint (any principal)
//	GET  /v1/status          journal, last seal, outbox, TPM (operator, auditor)
//	POST /v1/seal            seal now (operator)
//	GET  /healthz            the process serves (no token)
//	GET  /readyz             journal, TPM and policy are open (no token)
//
// Every call but /healthz and /readyz needs "Authorization: Bearer TOKEN";
// the token's SHA-256 is looked up among the config's principals.
//
// # One export
//
// Either a JSON envelope, Content-Type application/json:
//
//	{"id": "inv-2024-001", "workflow": "invoices-daily", "app": "n8n",
//	 "purpose": "month end", "schema": "invoice@1", "classification": "internal",
//	 "retention": "finance-10y", "destination": "archive", "data": {...any JSON...}}
//
// where id, purpose, schema, retention and media_type (a JSON media type
// such as application/vnd.x+json; default application/json) are optional
// and data is journaled byte for byte as sent. Or the raw payload, any
// Content-Type, with the same fields as headers: Edgeseal-Id,
// Edgeseal-Workflow (its presence selects this form), Edgeseal-App,
// Edgeseal-Purpose, Edgeseal-Schema, Edgeseal-Classification,
// Edgeseal-Retention, Edgeseal-Destination.
//
// The answer, once the record is durable, is 201 with the receipt
// {"exportId","seq","leaf","journalSize","digest"}.
//
// # Export ids
//
// Export ids are scoped by principal: each principal has its own id space
// and never sees another's exports. An id the principal journaled before
// answers 200 with the original receipt and "duplicate": true when the
// workflow and the payload digest are the same (it is never journaled
// twice), and 409 id_conflict, journaled as export.rejected, when either
// differs (the message names what differs, nothing of the original).
//
// GET /v1/exports/{id} answers an export the caller's principal sent; an
// id it did not send answers 404 exactly like an unknown one, so reads
// tell nothing of other principals. An auditor may name the principal
// with ?principal=NAME; without it every principal of the config is
// searched and an id more than one used answers 409 ambiguous_id. The
// answer is agent.ExportInfo: "principal", "status" (journaled, sealed,
// sent, archived, or refused with "reason": the first refusal of an id,
// shown to its sender only), the record and, once sealed, the checkpoint,
// inclusion proof and bundle.
//
// # Batch
//
// Content-Type application/x-ndjson (or application/jsonl): one JSON
// envelope per line, blank lines ignored, at most api.max_batch_lines. The
// body is decoded as it arrives into sub-batches of at most
// Options.BatchChunk line bytes (4 MiB; a longer line alone), each handed
// to the core in one call: one journal batch, in as few durable commits as
// fit the journal's commit size, rejected lines included. A batch within
// one sub-batch is read whole before anything is journaled; a larger one
// is journaled sub-batch by sub-batch, in order, and an error of the whole
// batch after one leaves those before it journaled. The answer comes only
// once every line is durable: 200 with Content-Type application/x-ndjson,
// one line per input line, in order,
//
//	{"line":1,"status":201,"receipt":{...}}
//	{"line":2,"status":422,"error":{"code":"schema_violation","message":"...","field":"data",...}}
//
// where line counts the non-blank input lines from 1 and status is what a
// single POST of that line would have answered. An error for the whole batch
// (401, 403, 413, 415, 503, 507) is answered like any other error.
//
// # Errors
//
// Always JSON: {"error":{"code","message","field"}}, plus "exportId", "seq"
// and "leaf" of the export.rejected record when the refusal was journaled.
// 400 malformed JSON or a bad field; 401 no or a bad token (with
// WWW-Authenticate: Bearer); 403 a role that may not; 404 unknown export;
// 413 over api.max_body or max_batch_lines; 415 wrong Content-Type; 422 a
// policy violation, code = the policy rule (unknown_workflow,
// schema_violation, classification_not_allowed, too_large, ...); 409
// id_conflict or ambiguous_id (above); 503 with Retry-After when the
// journal is busy, the single exports in flight already hold
// Options.MaxInflight bytes of bodies (api.max_inflight; code busy, not
// journaled), the disk nearly full or the agent is starting or stopping; 507 when a write failed for lack of space; 500 otherwise (the
// cause is logged, not shown).
//
// Every refused export attempt is journaled as export.rejected with who,
// what and why and no payload. Unauthenticated attempts too, but their
// header text is never journaled: the record holds "sha256:" digests of
// Edgeseal-Workflow and Edgeseal-App and, in its reason, of Edgeseal-Id,
// so its size does not depend on what was sent. At most
// UnauthenticatedPerSecond of them are journaled a second and
// Options.UnauthenticatedPerDay (DefaultUnauthenticatedPerDay) a UTC day;
// when the day's cap is reached one more record says so (*DailyCapError),
// and the refusals after it that day are only logged and counted
// (Options.Unjournaled; the daemon's metric
// edgeseal_agent_unauthenticated_unjournaled_total).
package api
