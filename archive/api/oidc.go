package api

import "net/http"

// OIDC signs users in from an OpenID Connect provider (not yet available:
// New refuses a non-nil OIDC until it is).
type OIDC struct{}

func (o *OIDC) login(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "OIDC sign-in is not yet available")
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "OIDC sign-in is not yet available")
}
