package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// deviceJSON is an item of GET /v1/devices.
type deviceJSON struct {
	Device      string `json:"device"`
	Site        string `json:"site"`
	Status      string `json:"status"`
	KeyID       string `json:"keyId,omitempty"`
	Epoch       uint64 `json:"epoch"`
	PCRs        string `json:"pcrs,omitempty"`
	RevokedKeys int    `json:"revokedKeys"`
	archive.DeviceSummary
	// Outbox is the device's latest outbox report, when it sent one
	// since the archive started.
	Outbox *archive.OutboxStatus `json:"outbox,omitempty"`
}

func (s *Server) listDevices(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	p, err := parseParams(r.URL.RawQuery, "device", "site")
	if err != nil {
		return s.failReply(err, t)
	}
	if v := p["device"]; v != "" {
		if err := checkDevice("device", v); err != nil {
			return s.failReply(err, t)
		}
	}
	t.Device = p["device"]
	list, err := s.a.Devices().List()
	if err != nil {
		return s.failReply(err, t)
	}
	sums, err := s.a.DeviceSummaries(r.Context())
	if err != nil {
		return s.failReply(err, t)
	}
	outboxes := s.a.OutboxStatuses()
	items := []deviceJSON{}
	seen := map[string]bool{}
	add := func(d deviceJSON) {
		if (p["device"] != "" && d.Device != p["device"]) || (p["site"] != "" && d.Site != p["site"]) {
			return
		}
		d.DeviceSummary = sums[d.Device]
		if o, ok := outboxes[d.Device]; ok {
			d.Outbox = &o
		}
		items = append(items, d)
	}
	for _, info := range list {
		site, _, _ := strings.Cut(info.Name, "/")
		d := deviceJSON{Device: info.Name, Site: site, Status: string(info.Status), KeyID: info.KeyID, Epoch: max(info.Epoch, 1), RevokedKeys: len(info.RevokedKeys)}
		if len(info.Trust) > 0 {
			d.PCRs = "golden"
		}
		seen[info.Name] = true
		add(d)
	}
	for name := range sums { // indexed, no longer registered
		if !seen[name] {
			site, _, _ := strings.Cut(name, "/")
			add(deviceJSON{Device: name, Site: site, Status: "unknown", Epoch: 1})
		}
	}
	slices.SortFunc(items, func(a, b deviceJSON) int { return strings.Compare(a.Device, b.Device) })
	return jsonReply(t, struct {
		Items []deviceJSON `json:"items"`
	}{items})
}

func (s *Server) getStats(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	q, err := parseStatsQuery(r.URL.RawQuery, s.opts.Now())
	if err != nil {
		return s.failReply(err, t)
	}
	days, truncated, err := s.a.ExportStats(r.Context(), q.by, q.from, q.to)
	if err != nil {
		return s.failReply(err, t)
	}
	if days == nil {
		days = []archive.DayCounts{}
	}
	return jsonReply(t, struct {
		By        string              `json:"by"`
		From      string              `json:"from"`
		To        string              `json:"to"`
		Days      []archive.DayCounts `json:"days"`
		Truncated bool                `json:"truncated,omitempty"`
	}{q.by, q.from.Format(time.DateOnly), q.to.Format(time.DateOnly), days, truncated})
}

func (s *Server) searchAccess(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	q, err := parseAccessQuery(r.URL.RawQuery)
	if err != nil {
		return s.failReply(err, t)
	}
	t.Device, t.Export, t.Bundle = q.Device, q.Export, q.Bundle
	p, err := s.a.SearchAccess(r.Context(), q)
	if err != nil {
		return s.failReply(err, t)
	}
	if p.Items == nil {
		p.Items = []archive.AccessItem{}
	}
	return jsonReply(t, pageJSON[archive.AccessItem]{Items: p.Items, Next: p.Next})
}

func (s *Server) accessCheckpoint(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	if _, err := parseParams(r.URL.RawQuery); err != nil {
		return s.failReply(err, t)
	}
	signed, _, err := s.a.AccessCheckpoint(r.Context())
	if err != nil {
		return s.failReply(err, t)
	}
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(signed)
	}}
}

func (s *Server) accessProof(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	n, err := parseIndex(r.URL.RawQuery)
	if err != nil {
		return s.failReply(err, t)
	}
	p, err := s.a.ProveAccess(r.Context(), n)
	if err != nil {
		return s.failReply(err, t)
	}
	return jsonReply(t, p)
}

// sessionJSON is the answer of the session calls.
type sessionJSON struct {
	Token   string   `json:"token,omitempty"`
	User    string   `json:"user"`
	Roles   []string `json:"roles"`
	Via     string   `json:"via"`
	Expires string   `json:"expires"`
}

func (s *Server) getSession(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	if _, err := parseParams(r.URL.RawQuery); err != nil {
		return s.failReply(err, t)
	}
	return jsonReply(t, sessionJSON{User: sess.user, Roles: sess.roles, Via: sess.via, Expires: wire.FormatTime(sess.expires)})
}

// signInBody is the body of POST /v1/session.
type signInBody struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// parseSignIn reads a sign-in body strictly (bounded, known members).
func parseSignIn(b []byte) (signInBody, error) {
	var in signInBody
	if len(b) > MaxBodyLen {
		return in, &ParamError{Reason: fmt.Sprintf("body larger than %d bytes", MaxBodyLen)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || dec.More() {
		return in, &ParamError{Reason: `body: want {"user":"…","password":"…"}`}
	}
	if CheckUserName(in.User) != nil || in.Password == "" || len(in.Password) > MaxPasswordLen {
		return in, &ParamError{Reason: "body: user or password missing or malformed"}
	}
	return in, nil
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyLen+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body failed")
		return
	}
	in, err := parseSignIn(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	select {
	case s.signIns <- struct{}{}:
	case <-time.After(10 * time.Second):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "too many sign-ins at once; retry")
		return
	case <-r.Context().Done():
		return
	}
	u, err := s.opts.Users.Authenticate(in.User, in.Password)
	<-s.signIns
	if errors.Is(err, ErrBadCredentials) {
		s.lg.Warn("api: sign-in refused", "user", in.User, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong user name or password")
		return
	}
	if err != nil {
		s.lg.Error("api: users file", "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the users file cannot be read")
		return
	}
	s.startSession(w, r, &session{user: u.Name, via: "local", roles: u.Roles}, false)
}

// startSession checks the roles, records the sign-in and answers with
// the token and cookie; a browser signed in by OIDC (page) gets a page
// that goes on to / (a same-site navigation, so that the SameSite=Strict
// cookie is sent).
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, sess *session, page bool) {
	roles := archiveRolesOf(sess.roles)
	if len(roles) == 0 {
		s.lg.Warn("api: sign-in refused: no archive role", "user", sess.user, "via", sess.via, "roles", sess.roles, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden", "this account has no archive role (auditor, operator, policy-admin)")
		return
	}
	sess.roles = roles
	sess.expires = s.opts.Now().Add(s.opts.SessionTTL)
	if !s.record(w, r, sess, "session.create", reply{outcome: outcomeOK}) {
		return
	}
	tok, err := s.ss.create(sess)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no session")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: "/", Expires: sess.expires, MaxAge: int(s.opts.SessionTTL.Seconds()),
		HttpOnly: true, Secure: s.opts.SecureCookie, SameSite: http.SameSiteStrictMode,
	})
	if page {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `<!doctype html><meta http-equiv="refresh" content="0;url=/"><title>Signed in</title><a href="/">Continue</a>`)
		return
	}
	writeJSON(w, http.StatusOK, sessionJSON{Token: tok, User: sess.user, Roles: sess.roles, Via: sess.via, Expires: wire.FormatTime(sess.expires)})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	sess := s.authenticate(w, r)
	if sess == nil {
		return
	}
	if !s.record(w, r, sess, "session.delete", reply{outcome: outcomeOK}) {
		return
	}
	s.ss.drop(tokenOf(r))
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.opts.SecureCookie, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// keepalive is how often the event stream sends a comment.
var keepalive = 15 * time.Second

func (s *Server) events(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	if _, err := parseParams(r.URL.RawQuery); err != nil {
		return s.failReply(err, t)
	}
	auditor := sess.has(RoleAuditor)
	ch, cancel := s.a.Subscribe() // before the answer: nothing after the call is missed
	return reply{outcome: outcomeOK, target: t, write: func(w http.ResponseWriter) {
		defer cancel()
		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, ": edgeseal events\n\n")
		_ = rc.Flush()
		tick := time.NewTicker(keepalive)
		defer tick.Stop()
		expiry := time.NewTimer(time.Until(sess.expires))
		defer expiry.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-expiry.C:
				return
			case <-tick.C:
				if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
					return
				}
			case ev, ok := <-ch:
				if !ok {
					return // fell behind, or the archive closed
				}
				if ev.Type == archive.EventAccess && !auditor {
					continue
				}
				data, err := json.Marshal(ev.Data)
				if err != nil {
					continue
				}
				if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); err != nil {
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}}
}
