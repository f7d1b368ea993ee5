package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// Decryption through the API (docs/archive-api.md "Decryption"): a
// payload or an evidence pack asked with decrypt=1 and a why (case, or
// reason) is decrypted with the archive's content key when the session's
// roles may see the export's classification (Options.Decrypt); each
// decryption and each refusal is a decrypt entry of the access log,
// appended before anything is sent.

// DecryptPolicy maps a classification to the roles that may decrypt it;
// the key "*" covers every classification not listed and exports
// without one. An empty policy lets no one decrypt.
type DecryptPolicy map[string][]string

// rolesFor are the roles that may decrypt class.
func (p DecryptPolicy) rolesFor(class string) []string {
	if r, ok := p[class]; ok && class != "" {
		return r
	}
	return p["*"]
}

// allows reports whether sess may decrypt class; else why not.
func (p DecryptPolicy) allows(sess *session, class string) (bool, string) {
	roles := p.rolesFor(class)
	name := class
	if name == "" {
		name = "(none)"
	}
	if len(roles) == 0 {
		return false, fmt.Sprintf("classification %s: no role may decrypt it (api.decrypt)", name)
	}
	if !sess.has(roles...) {
		return false, fmt.Sprintf("classification %s: decrypting needs one of the roles %s", name, strings.Join(roles, ", "))
	}
	return true, ""
}

// decryptAsk is what a request asks to decrypt with, and why.
type decryptAsk struct {
	on     bool
	caseID string
	reason string
}

func (d decryptAsk) entry() archive.AccessDecrypt {
	return archive.AccessDecrypt{Case: d.caseID, Reason: d.reason}
}

// parseDecrypt reads decrypt, case and reason of p: decrypt is "1" or
// absent; with it a case (1 to MaxDecryptCase bytes of [A-Za-z0-9._:/#-])
// or a reason (1 to MaxDecryptReason bytes of text) is required; without
// it neither is allowed. caseName is the parameter that carries the case
// ("" when the endpoint has none).
func parseDecrypt(p params, caseName string) (decryptAsk, error) {
	var d decryptAsk
	v, on := p["decrypt"]
	if on && v != "1" {
		return d, &ParamError{Name: "decrypt", Reason: "want 1"}
	}
	d.on = on
	if caseName != "" {
		d.caseID = p[caseName]
	}
	d.reason = p["reason"]
	if !on {
		if _, given := p["reason"]; given {
			return d, &ParamError{Name: "reason", Reason: "only with decrypt=1"}
		}
		return d, nil
	}
	if d.caseID == "" && strings.TrimSpace(d.reason) == "" {
		return d, &ParamError{Name: "decrypt", Reason: "say why: give case=ID or reason=TEXT"}
	}
	if d.caseID != "" {
		if err := checkCaseID(caseName, d.caseID); err != nil {
			return d, err
		}
	}
	if len(d.reason) > archive.MaxDecryptReason {
		return d, &ParamError{Name: "reason", Reason: fmt.Sprintf("longer than %d bytes", archive.MaxDecryptReason)}
	}
	return d, nil
}

// checkCaseID checks a case id.
func checkCaseID(name, v string) error {
	if v == "" || len(v) > archive.MaxDecryptCase {
		return &ParamError{Name: name, Reason: fmt.Sprintf("want 1 to %d bytes", archive.MaxDecryptCase)}
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:/#-", c)) {
			return &ParamError{Name: name, Reason: "want letters, digits and ._:/#-"}
		}
	}
	return nil
}

// askedDecrypt reads a decryption asked of a call refused before its
// handler ran (by role), leniently: nil when none was asked. The target
// t gets the device and export the query names when the path did not
// (a pack), so that the refusal is in the export's access history.
func askedDecrypt(r *http.Request, t *archive.AccessTarget) *archive.AccessDecrypt {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || vals.Get("decrypt") == "" {
		return nil
	}
	if t.Export == "" {
		t.Device, t.Export = vals.Get("device"), vals.Get("export")
	}
	return &archive.AccessDecrypt{Case: vals.Get("case"), Reason: vals.Get("reason"), Refused: "the session's roles may not read this"}
}

// decryptFail maps an error of decryption to an answer: a payload that
// does not open is the archive's fault, never the caller's.
func (s *Server) decryptFail(err error, t archive.AccessTarget, d archive.AccessDecrypt) reply {
	var rep reply
	switch {
	case errors.Is(err, archive.ErrNotEncrypted):
		rep = errReply(http.StatusBadRequest, "bad_request", "the export's payload is not encrypted: ask without decrypt")
	default:
		s.lg.Error("api: decrypt failed", "device", t.Device, "export", t.Export, "err", err)
		rep = errReply(http.StatusServiceUnavailable, "unavailable", "the payload could not be decrypted")
		rep.outcome = "error"
	}
	d.Refused = cut(err.Error(), 200)
	rep.target, rep.decrypt = t, &d
	return rep
}

// decryptProofs decrypts the payload of each encrypted export of the
// proofs (each must be allowed and open; an export the agent did not
// encrypt is left as it is, nil in the result) and appends a decrypt
// entry per export before returning the plaintexts; a refusal is logged
// per refused export, and the first refusal is the answer.
func (s *Server) decryptProofs(r *http.Request, sess *session, ask decryptAsk, es []*archive.ExportEntry, proofs []*proof.Proof) ([][]byte, *reply) {
	refuse := func(rep reply) ([][]byte, *reply) { return nil, &rep }
	type one struct {
		t archive.AccessTarget
		d *archive.Decrypted
	}
	var done []one
	var refusals []reply
	idx := make([]int, 0, len(proofs)) // of done, into proofs
	for i, pr := range proofs {
		if len(pr.Records) > 0 {
			if _, enc, ok, err := custody.RecordPayloadFile([]byte(pr.Records[0].Record)); err == nil && ok && !enc {
				continue // served as the agent sent it: nothing to decrypt
			}
		}
		t := archive.AccessTarget{Device: es[i].Device, Export: es[i].Export, Bundle: es[i].Bundle}
		dw := ask.entry()
		dw.Classification = es[i].Classification
		if ok, why := s.opts.Decrypt.allows(sess, es[i].Classification); !ok {
			dw.Refused = why
			rep := errReply(http.StatusForbidden, "forbidden", why)
			rep.target, rep.decrypt = t, &dw
			refusals = append(refusals, rep)
			continue
		}
		if len(pr.Records) == 0 || pr.Payload == nil {
			rep := errReply(http.StatusGone, "gone", "the payload of "+es[i].Export+" was purged")
			dw.Refused = "purged"
			rep.target, rep.decrypt = t, &dw
			refusals = append(refusals, rep)
			continue
		}
		dec, err := s.a.DecryptExport([]byte(pr.Records[0].Record), pr.Payload)
		if err != nil {
			refusals = append(refusals, s.decryptFail(err, t, dw))
			continue
		}
		done = append(done, one{t, dec})
		idx = append(idx, i)
	}
	if len(refusals) > 0 {
		for _, rep := range refusals {
			if !s.appendDecrypt(r, sess, "pack", rep) {
				return refuse(errReply(http.StatusServiceUnavailable, "unavailable", "the access log cannot record this decryption"))
			}
		}
		return refuse(refusals[0])
	}
	out := make([][]byte, len(proofs))
	for j, o := range done {
		i := idx[j]
		d := o.d.Entry
		d.Case, d.Reason = ask.caseID, ask.reason
		if !s.appendDecrypt(r, sess, "pack", reply{outcome: outcomeOK, target: o.t, decrypt: &d}) {
			return refuse(errReply(http.StatusServiceUnavailable, "unavailable", "the access log cannot record this decryption"))
		}
		out[i] = o.d.Plaintext
	}
	return out, nil
}

// appendDecrypt appends the decrypt entry of rep (for a call that
// decrypts several exports).
func (s *Server) appendDecrypt(r *http.Request, sess *session, action string, rep reply) bool {
	_, err := s.a.RecordAccess(r.Context(), archive.AccessEntry{
		User: sess.user, Via: sess.via, Roles: sess.roles, Action: action, Outcome: rep.outcome,
		Target: rep.target, Remote: r.RemoteAddr, UserAgent: r.UserAgent(), Decrypt: rep.decrypt,
	})
	if err != nil {
		s.lg.Error("api: access log: decryption refused", "user", sess.user, "err", err)
		return false
	}
	return true
}
