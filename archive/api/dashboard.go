package api

import (
	"net/http"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/dashboard"
)

// MountDashboard serves the dashboard (archive/dashboard) on the API's
// server: its page at "/" and its files under "/assets/", without a
// session (they hold no data: every datum the page shows is read from the
// API by the signed-in browser). It adds the two reads the page needs
// beyond the contract, authenticated and access-logged like the others:
// GET /v1/policies (policy versions per device, archive.DevicePolicies)
// and GET /v1/alerts (open alerts, archive.OpenAlerts).
//
// With OIDC configured, the sign-in page offers it (o.OIDCLogin).
func (s *Server) MountDashboard(o dashboard.Options) {
	if s.opts.OIDC != nil && o.OIDCLogin == "" {
		o.OIDCLogin = "/v1/oidc/login"
	}
	page := dashboard.Handler(o)
	s.mux.Handle("GET /{$}", page)
	s.mux.Handle("GET /assets/", page)
	s.route("GET", "/v1/policies", "policies.list", anyRole, s.listPolicies)
	s.route("GET", "/v1/alerts", "alerts.list", anyRole, s.listAlerts)
}

// maxAlerts bounds the quarantined bundles GET /v1/alerts reads.
const maxAlerts = 1000

func (s *Server) listPolicies(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	p, err := parseParams(r.URL.RawQuery, "device")
	if err != nil {
		return s.failReply(err, t)
	}
	if v := p["device"]; v != "" {
		if err := checkDevice("device", v); err != nil {
			return s.failReply(err, t)
		}
	}
	t.Device = p["device"]
	items, err := s.a.DevicePolicies(r.Context(), p["device"])
	if err != nil {
		return s.failReply(err, t)
	}
	if items == nil {
		items = []archive.DevicePolicy{}
	}
	return jsonReply(t, pageJSON[archive.DevicePolicy]{Items: items})
}

func (s *Server) listAlerts(r *http.Request, sess *session) reply {
	t := queryTarget(r)
	p, err := parseParams(r.URL.RawQuery, "limit", "device")
	if err != nil {
		return s.failReply(err, t)
	}
	n, err := p.limit()
	if err != nil {
		return s.failReply(err, t)
	}
	if v := p["device"]; v != "" {
		if err := checkDevice("device", v); err != nil {
			return s.failReply(err, t)
		}
	}
	t.Device = p["device"]
	all, err := s.a.OpenAlerts(r.Context(), maxAlerts)
	if err != nil {
		return s.failReply(err, t)
	}
	items := []archive.Alert{}
	for _, al := range all {
		if len(items) == n {
			break
		}
		if p["device"] == "" || al.Device == p["device"] {
			al.Quarantine = "" // a path on the archive host
			items = append(items, al)
		}
	}
	return jsonReply(t, pageJSON[archive.Alert]{Items: items})
}
