// Package signed reads, signs and verifies signed policies: a policy and
// its schema files carried in one document, inside a DSSE envelope signed
// by policy administrators (docs/formats.md, "Signed policy").
//
// The payload is canonical JSON (RFC 8785) of type [PayloadType]:
//
//	{"files":{"schemas/invoice-1.json":"..."},"policy":"version: 1\n...","version":1}
//
// "policy" is the policy file's text (agent/policy), "files" every schema
// file it names or $refs, by its path relative to the policy file, and no
// other file. The policy's digest ([policy.Policy.Digest]) is the same
// as that of the unsigned files, so an export names the same policy
// whoever signed it.
//
// The administrators and how many of them must sign (m of n) are an
// [Admins] set, fixed on the device by its configuration. [Verify] wants
// signatures by at least Threshold distinct administrators, and refuses a
// policy that lists an administrator as a principal of a workflow
// (separation of duties: who approves the policy does not export under
// it).
package signed
