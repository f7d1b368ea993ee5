package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig configures sign-in from the organization's identity provider
// (OpenID Connect, authorization code flow with PKCE).
type OIDCConfig struct {
	Issuer       string // the provider's issuer URL (discovery)
	ClientID     string
	ClientSecret string
	RedirectURL  string // https://ARCHIVE/v1/oidc/callback, registered at the provider
	// RoleClaim names the claim (of the ID token, else of the userinfo)
	// whose value, or each of whose values, maps to archive roles
	// through Roles.
	RoleClaim string
	Roles     map[string][]string
}

// oidcStateCookie binds a login to the browser that started it.
const oidcStateCookie = "edgeseal_oidc"

// Login bounds.
const (
	oidcLoginTTL    = 10 * time.Minute
	maxOIDCPending  = 1000
	maxOIDCUserName = 128
)

// OIDC is a configured identity provider.
type OIDC struct {
	cfg      OIDCConfig
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config

	mu      sync.Mutex
	pending map[string]oidcPending // by state
}

type oidcPending struct {
	nonce, verifier string
	expires         time.Time
}

// NewOIDC discovers the provider (ctx bounds discovery and, later, the
// fetches of its keys: the daemon's context).
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("api: oidc provider %s: %w", cfg.Issuer, err)
	}
	return &OIDC{
		cfg: cfg, provider: p, verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: cfg.RedirectURL,
			Scopes: []string{oidc.ScopeOpenID, "profile", "email"}},
		pending: map[string]oidcPending{},
	}, nil
}

func randomText() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// login starts a sign-in: it remembers state, nonce and the PKCE verifier
// and sends the browser to the provider.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	o := s.opts.OIDC
	state, err1 := randomText()
	nonce, err2 := randomText()
	if err1 != nil || err2 != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no randomness")
		return
	}
	verifier := oauth2.GenerateVerifier()
	now := s.opts.Now()
	o.mu.Lock()
	for k, p := range o.pending {
		if now.After(p.expires) {
			delete(o.pending, k)
		}
	}
	if len(o.pending) >= maxOIDCPending {
		o.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "unavailable", "too many sign-ins in progress; retry")
		return
	}
	o.pending[state] = oidcPending{nonce: nonce, verifier: verifier, expires: now.Add(oidcLoginTTL)}
	o.mu.Unlock()
	// Lax: the cookie must come back on the provider's top-level redirect.
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: state, Path: "/v1/oidc/", MaxAge: int(oidcLoginTTL.Seconds()),
		HttpOnly: true, Secure: s.opts.SecureCookie, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback completes a sign-in: the state matches the browser's
// cookie and a pending login, the code is exchanged with its PKCE
// verifier, the ID token is verified (issuer, audience, expiry, signature
// by the provider's keys, nonce), and the user's roles come from the role
// claim.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := s.opts.OIDC
	if len(r.URL.RawQuery) > MaxQueryLen {
		writeError(w, http.StatusBadRequest, "bad_request", "query string too long")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed query string")
		return
	}
	if e := q.Get("error"); e != "" {
		s.lg.Warn("api: oidc sign-in refused by the provider", "error", cut(e, 100), "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the identity provider refused the sign-in")
		return
	}
	state, code := q.Get("state"), q.Get("code")
	ck, cerr := r.Cookie(oidcStateCookie)
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: "/v1/oidc/", MaxAge: -1, HttpOnly: true, Secure: s.opts.SecureCookie, SameSite: http.SameSiteLaxMode})
	o.mu.Lock()
	p, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if state == "" || code == "" || cerr != nil || ck.Value != state || !ok || s.opts.Now().After(p.expires) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "no sign-in in progress from this browser (start again at /v1/oidc/login)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	sess, err := o.session(ctx, code, p)
	if err != nil {
		s.lg.Warn("api: oidc sign-in failed", "err", err, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the sign-in could not be verified")
		return
	}
	s.startSession(w, r, sess, true)
}

// session exchanges the code and reads the user and roles.
func (o *OIDC) session(ctx context.Context, code string, p oidcPending) (*session, error) {
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return nil, errors.New("no id_token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("id token: %w", err)
	}
	if idt.Nonce != p.nonce {
		return nil, errors.New("id token: nonce does not match")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	if _, has := claims[o.cfg.RoleClaim]; !has || claims["preferred_username"] == nil {
		// Claims the provider keeps for the userinfo endpoint.
		ui, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, fmt.Errorf("userinfo: %w", err)
		}
		if ui.Subject != idt.Subject {
			return nil, errors.New("userinfo: another subject")
		}
		more := map[string]any{}
		if err := ui.Claims(&more); err != nil {
			return nil, err
		}
		for k, v := range more {
			if _, has := claims[k]; !has {
				claims[k] = v
			}
		}
	}
	name, roles, err := o.userOf(claims, idt.Subject)
	if err != nil {
		return nil, err
	}
	return &session{user: "oidc:" + name, via: "oidc", roles: roles}, nil
}

// userOf reads the user name (preferred_username, else email, else the
// subject) and the roles its role claim maps to.
func (o *OIDC) userOf(claims map[string]any, subject string) (string, []string, error) {
	name := subject
	for _, k := range []string{"preferred_username", "email"} {
		if v, ok := claims[k].(string); ok && v != "" {
			name = v
			break
		}
	}
	if !utf8.ValidString(name) || name == "" || len(name) > maxOIDCUserName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", nil, errors.New("user name claim is empty, too long or not text")
	}
	var roles []string
	for _, v := range claimValues(claims[o.cfg.RoleClaim]) {
		for _, role := range o.cfg.Roles[v] {
			if !contains(roles, role) {
				roles = append(roles, role)
			}
		}
	}
	return name, roles, nil
}

// claimValues reads a string or a list of strings.
func claimValues(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
