package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
)

// CookieName is the session cookie.
const CookieName = "edgeseal_session"

// maxSessions bounds the live sessions; past it the oldest is dropped.
const maxSessions = 10000

// session is a signed-in user.
type session struct {
	user    string
	via     string // "local" or "oidc"
	roles   []string
	expires time.Time
}

func (s *session) has(roles ...string) bool {
	for _, r := range roles {
		if contains(s.roles, r) {
			return true
		}
	}
	return false
}

// sessions are held in memory by the SHA-256 of their token.
type sessions struct {
	mu  sync.Mutex
	m   map[[32]byte]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, now: now}
}

// create returns a new token for s.
func (ss *sessions) create(s *session) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweep()
	if len(ss.m) >= maxSessions {
		var oldest [32]byte
		var t time.Time
		for k, v := range ss.m {
			if t.IsZero() || v.expires.Before(t) {
				oldest, t = k, v.expires
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(tok))] = s
	return tok, nil
}

// sweep drops expired sessions (ss.mu held).
func (ss *sessions) sweep() {
	now := ss.now()
	for k, v := range ss.m {
		if !now.Before(v.expires) {
			delete(ss.m, k)
		}
	}
}

// get returns the live session of tok (nil: none or expired).
func (ss *sessions) get(tok string) *session {
	if tok == "" || len(tok) > 128 {
		return nil
	}
	k := sha256.Sum256([]byte(tok))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[k]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, k)
		return nil
	}
	return s
}

// drop ends the session of tok.
func (ss *sessions) drop(tok string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(tok)))
}

// dropUser ends every session of user.
func (ss *sessions) dropUser(user string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, v := range ss.m {
		if v.user == user {
			delete(ss.m, k)
		}
	}
}

// tokenOf reads the token of a request: Authorization: Bearer, else the
// session cookie.
func tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}
