package dashboard

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeAPI is a stand-in for the archive's read API (docs/archive-api.md)
// with the shapes the dashboard reads, for the page's own tests: users
// alice (auditor, password "right"), eve (exporter only), two exports, one
// device, stats, and an event stream the test feeds. The real API is
// driven by the system test in e2e/.
type fakeAPI struct {
	mu       sync.Mutex
	sessions map[string]string // token -> user
	access   []map[string]any
	events   chan string
	entries  []map[string]any
	// plain holds the plaintexts of encrypted exports by id: the export
	// answers encrypted and mayDecrypt, and its payload asked with
	// decrypt=1 answers them (a reason "deny" is refused, "tamper" answers
	// other bytes than the digest it names).
	plain map[string][]byte
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{sessions: map[string]string{}, events: make(chan string, 16), plain: map[string][]byte{}}
	f.entries = []map[string]any{
		f.entry("EXP-1", 3, "accepted", ""),
		f.entry("EXP-2", 4, "refused", "schema: total missing"),
	}
	return f
}

func (f *fakeAPI) entry(id string, seq int, status, reason string) map[string]any {
	e := map[string]any{
		"device": "site1/dev1", "site": "site1", "export": id, "seq": seq, "type": "export", "status": status,
		"workflow": "invoices-daily", "app": "n8n", "principal": "n8n-prod", "classification": "internal",
		"policy": "sha256:" + strings.Repeat("ab", 32), "time": "2026-12-07T09:40:00.000000Z",
		"acceptedAt": "2026-12-07T09:41:02.000000Z", "bundle": "sha256:" + strings.Repeat("cd", 32),
	}
	if status == "accepted" {
		e["logIndex"] = 0
		e["object"] = "sha256/cd/" + strings.Repeat("cd", 32)
		e["retainUntil"] = "2036-12-05T09:41:02.000000Z"
		e["payload"] = map[string]any{"digest": "sha256:" + strings.Repeat("ef", 32), "size": 12, "mediaType": "application/json"}
	} else {
		e["type"], e["refusedBy"], e["reason"] = "export.rejected", "agent", reason
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "message": code})
}

func (f *fakeAPI) user(r *http.Request) string {
	c, err := r.Cookie("edgeseal_session")
	if err != nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[c.Value]
}

// expire ends every session.
func (f *fakeAPI) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.sessions)
}

func (f *fakeAPI) log(user, action string, target map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access = append(f.access, map[string]any{"index": len(f.access), "entry": map[string]any{
		"action": action, "outcome": "ok", "user": user, "roles": []string{"auditor"}, "target": target,
		"time": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "remote": "127.0.0.1:1", "via": "local"}})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/session" && r.Method == http.MethodPost {
		var in struct{ User, Password string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		switch {
		case in.User == "eve" && in.Password == "right":
			apiError(w, http.StatusForbidden, "forbidden")
		case in.User != "alice" || in.Password != "right":
			apiError(w, http.StatusUnauthorized, "unauthorized")
		default:
			tok := fmt.Sprintf("tok%d", time.Now().UnixNano())
			f.mu.Lock()
			f.sessions[tok] = in.User
			f.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "edgeseal_session", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			f.log(in.User, "session.create", nil)
			writeJSON(w, http.StatusOK, map[string]any{"user": in.User, "roles": []string{"auditor"}, "via": "local"})
		}
		return
	}
	u := f.user(r)
	if u == "" {
		apiError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	q := r.URL.Query()
	switch p := r.URL.Path; {
	case p == "/v1/session" && r.Method == http.MethodDelete:
		f.expire()
		w.WriteHeader(http.StatusNoContent)
	case p == "/v1/session":
		writeJSON(w, http.StatusOK, map[string]any{"user": u, "roles": []string{"auditor"}, "via": "local"})
	case p == "/v1/exports":
		f.log(u, "exports.search", nil)
		var items []map[string]any
		f.mu.Lock()
		for i := len(f.entries) - 1; i >= 0; i-- {
			e := f.entries[i]
			if (q.Get("export") == "" || e["export"] == q.Get("export")) && (q.Get("status") == "" || e["status"] == q.Get("status")) {
				items = append(items, e)
			}
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	case strings.HasPrefix(p, "/v1/exports/site1/dev1/") && strings.HasSuffix(p, "/payload"):
		f.payload(w, r, u, strings.TrimSuffix(strings.TrimPrefix(p, "/v1/exports/site1/dev1/"), "/payload"))
	case strings.HasPrefix(p, "/v1/exports/site1/dev1/"):
		id := strings.TrimPrefix(p, "/v1/exports/site1/dev1/")
		f.log(u, "export.get", map[string]any{"device": "site1/dev1", "export": id})
		f.mu.Lock()
		_, enc := f.plain[id]
		f.mu.Unlock()
		for _, e := range f.entries {
			if e["export"] == id {
				doc := map[string]any{"entry": e, "record": map[string]any{"v": 1, "seq": e["seq"], "type": e["type"]}, "others": 0}
				if enc {
					doc["encrypted"], doc["mayDecrypt"] = true, true
				}
				writeJSON(w, http.StatusOK, doc)
				return
			}
		}
		apiError(w, http.StatusNotFound, "not_found")
	case strings.HasSuffix(p, "/receipt"):
		f.log(u, "bundle.receipt", nil)
		payload, _ := json.Marshal(map[string]any{"bundleDigest": "sha256:" + strings.Repeat("cd", 32), "device": "site1/dev1", "logIndex": 0})
		writeJSON(w, http.StatusOK, map[string]any{"payloadType": "x", "payload": payload, "signatures": []any{}})
	case p == "/v1/access":
		f.mu.Lock()
		items := make([]map[string]any, 0, len(f.access))
		for i := len(f.access) - 1; i >= 0; i-- {
			t, _ := f.access[i]["entry"].(map[string]any)["target"].(map[string]any)
			if q.Get("export") == "" || (t != nil && t["export"] == q.Get("export")) {
				items = append(items, f.access[i])
			}
		}
		f.mu.Unlock()
		f.log(u, "access.search", nil)
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	case p == "/v1/stats":
		by := q.Get("by")
		counts := map[string]map[string]int{"status": {"accepted": 5, "refused": 2}, "reason": {"schema: total missing": 2}}[by]
		if counts == nil {
			counts = map[string]int{"a": 3, "b": 4}
		}
		writeJSON(w, http.StatusOK, map[string]any{"by": by, "days": []any{map[string]any{"day": time.Now().UTC().Format("2006-01-02"), "counts": counts}}})
	case p == "/v1/devices":
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{map[string]any{"device": "site1/dev1", "site": "site1", "status": "approved", "keyId": "sha256:" + strings.Repeat("12", 32),
			"epoch": 1, "pcrs": "golden", "bundles": 1, "exports": 1, "refused": 1, "lastBundle": "sha256:" + strings.Repeat("cd", 32), "lagSeconds": 62.0,
			"outbox": map[string]any{"depth": 3, "oldest": "2026-11-26T01:56:00.000000Z", "ageSeconds": 240.0, "reported": "2026-11-26T02:00:00.000000Z", "received": "2026-11-26T02:00:01.000000Z"}}}})
	case p == "/v1/alerts":
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{}})
	case p == "/v1/policies":
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{map[string]any{"device": "site1/dev1", "policy": "sha256:" + strings.Repeat("ab", 32), "current": true, "exports": 2}}})
	case p == "/v1/events":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-f.events:
				fmt.Fprint(w, ev)
				w.(http.Flusher).Flush()
			}
		}
	default:
		apiError(w, http.StatusNotFound, "not_found")
	}
}

// payload answers an export's payload: only decrypted ones (decrypt=1
// with a case or a reason), each logged as a decrypt entry.
func (f *fakeAPI) payload(w http.ResponseWriter, r *http.Request, user, id string) {
	q := r.URL.Query()
	f.mu.Lock()
	pt, ok := f.plain[id]
	f.mu.Unlock()
	if !ok || q.Get("decrypt") != "1" {
		apiError(w, http.StatusNotFound, "not_found")
		return
	}
	why := q.Get("case") + q.Get("reason")
	if why == "" {
		apiError(w, http.StatusBadRequest, "bad_request")
		return
	}
	d := map[string]any{"case": q.Get("case"), "reason": q.Get("reason")}
	target := map[string]any{"device": "site1/dev1", "export": id}
	logDecrypt := func(outcome string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.access = append(f.access, map[string]any{"index": len(f.access), "entry": map[string]any{
			"type": "decrypt", "action": "export.payload", "outcome": outcome, "user": user, "roles": []string{"auditor"}, "target": target,
			"time": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "remote": "127.0.0.1:1", "via": "local", "decrypt": d}})
	}
	if q.Get("reason") == "deny" {
		d["refused"] = "classification secret: decrypting needs one of the roles decryptor"
		logDecrypt("forbidden")
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden", "message": d["refused"].(string)})
		return
	}
	digest := "sha256:" + fmt.Sprintf("%x", sha256.Sum256(pt))
	d["plaintext"] = digest
	logDecrypt("ok")
	body := pt
	if q.Get("reason") == "tamper" {
		body = append([]byte("x"), pt...)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="`+strings.TrimPrefix(digest, "sha256:")+`"`)
	h.Set("X-Edgeseal-Digest", digest)
	h.Set("X-Edgeseal-Decrypted", "1")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
