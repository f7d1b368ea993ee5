package api

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/archive"
)

// Every parser of the API's outside bytes is fuzzed: accepted values are
// within their documented bounds, refusals are *ParamError (400), never a
// panic.

func checkParamErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, ok := errors.AsType[*ParamError](err); !ok {
		t.Fatalf("refusal %v is not a *ParamError", err)
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"", "a=1", "a=1&a=2", "a=%zz", "b=1", "a=" + strings.Repeat("x", 300), "a=%00", "a=%ff", ";"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parseParams(raw, "a", "c")
		checkParamErr(t, err)
		for k, v := range p {
			if (k != "a" && k != "c") || len(v) > MaxParamLen || !utf8.ValidString(v) {
				t.Fatalf("accepted %q=%q", k, v)
			}
		}
	})
}

func FuzzExportQuery(f *testing.F) {
	for _, s := range []string{"", "export=x&device=s/d&limit=5&order=asc", "log_index=18446744073709551615", "from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
		"bundle=sha256:" + strings.Repeat("a", 64), "status=refused&reason=x", "limit=01", "cursor=abc", "case=C-7&principal=p", "case=" + strings.Repeat("c", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseExportQuery(raw)
		checkParamErr(t, err)
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > archive.MaxPageLimit {
			t.Fatalf("limit %d", q.Limit)
		}
		if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
			t.Fatalf("from %v to %v", q.From, q.To)
		}
		if q.Status != "" && q.Status != archive.StatusAccepted && q.Status != archive.StatusRefused {
			t.Fatalf("status %q", q.Status)
		}
		if len(q.Case) > MaxParamLen {
			t.Fatalf("case of %d bytes", len(q.Case))
		}
	})
}

func FuzzAccessQuery(f *testing.F) {
	for _, s := range []string{"", "user=alice&export=x&device=s/d", "order=desc&limit=1000", "bundle=zz", "device=a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseAccessQuery(raw)
		checkParamErr(t, err)
		if err == nil && (q.Limit < 1 || q.Limit > archive.MaxPageLimit) {
			t.Fatalf("limit %d", q.Limit)
		}
	})
}

func FuzzStatsQuery(f *testing.F) {
	for _, s := range []string{"", "by=workflow&from=2026-01-01&to=2026-12-31", "from=2020-01-01", "to=0000-01-01", "by=x"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseStatsQuery(raw, now)
		checkParamErr(t, err)
		if err != nil {
			return
		}
		if q.to.Before(q.from) || q.to.Sub(q.from) >= maxStatsDays*24*time.Hour {
			t.Fatalf("range %v..%v", q.from, q.to)
		}
	})
}

func FuzzIndexAndDigest(f *testing.F) {
	for _, s := range []string{"index=0", "index=-1", "index=01", "index=18446744073709551616", "sha256:" + strings.Repeat("0", 64), strings.Repeat("A", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := parseIndex(raw)
		checkParamErr(t, err)
		name, _, err := parseDigest("digest", raw)
		checkParamErr(t, err)
		if err == nil && (len(name) != 71 || !strings.HasPrefix(name, "sha256:")) {
			t.Fatalf("digest %q", name)
		}
		checkParamErr(t, checkPathSegment("id", raw))
		if v, err := url.PathUnescape(raw); err == nil {
			checkParamErr(t, checkDevice("device", v))
		}
	})
}

func FuzzSignInBody(f *testing.F) {
	for _, s := range []string{`{"user":"alice","password":"x"}`, `{}`, `{"user":1}`, `[]`, `{"user":"a","password":"b"}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseSignIn(b)
		checkParamErr(t, err)
		if err == nil && (CheckUserName(in.User) != nil || in.Password == "" || len(in.Password) > MaxPasswordLen) {
			t.Fatalf("accepted %+v", in)
		}
	})
}

func FuzzParseUsersFile(f *testing.F) {
	h, _ := HashPassword("correct horse battery staple")
	f.Add([]byte(`{"v":1,"users":[{"name":"alice","roles":["auditor"],"hash":"` + h + `"}]}`))
	f.Add([]byte(`{"v":1,"users":[]}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		uf, err := ParseUsersFile(b)
		if err != nil {
			return
		}
		for _, u := range uf.Users {
			if CheckUserName(u.Name) != nil || CheckRoles(u.Roles) != nil {
				t.Fatalf("accepted %+v", u)
			}
		}
	})
}

func FuzzParsePHC(f *testing.F) {
	h, _ := HashPassword("correct horse battery staple")
	f.Add(h)
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2i$v=19$m=65536,t=3,p=2$AAAA$AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		salt, key, tm, m, p, err := parsePHC(s)
		if err != nil {
			return
		}
		if m > 256*1024 || tm > 16 || p > 16 || len(salt) > 64 || len(key) > 64 {
			t.Fatalf("accepted unbounded parameters m=%d t=%d p=%d", m, tm, p)
		}
	})
}

// FuzzOIDCClaims: the user name and roles read from an identity
// provider's claims (JSON) are bounded text and only mapped roles.
func FuzzOIDCClaims(f *testing.F) {
	f.Add([]byte(`{"preferred_username":"alice","groups":["auditors","x"]}`), "sub-1")
	f.Add([]byte(`{"email":"a@b","groups":"auditors"}`), "")
	f.Add([]byte(`{"groups":[1,null,{}]}`), "s")
	o := &OIDC{cfg: OIDCConfig{RoleClaim: "groups", Roles: map[string][]string{"auditors": {RoleAuditor}, "ops": {RoleOperator}}}}
	f.Fuzz(func(t *testing.T, b []byte, sub string) {
		var claims map[string]any
		if json.Unmarshal(b, &claims) != nil {
			return
		}
		name, roles, err := o.userOf(claims, sub)
		if err != nil {
			return
		}
		if name == "" || len(name) > maxOIDCUserName || !utf8.ValidString(name) {
			t.Fatalf("user %q", name)
		}
		for _, r := range roles {
			if r != RoleAuditor && r != RoleOperator {
				t.Fatalf("role %q", r)
			}
		}
	})
}
