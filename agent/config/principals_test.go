package config

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestHashToken(t *testing.T) {
	sum := sha256.Sum256([]byte("s3cret"))
	if got, want := HashToken("s3cret"), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("HashToken = %q, want %q", got, want)
	}
	if HashToken("a") == HashToken("b") {
		t.Fatal("different tokens hash alike")
	}
}

func TestAuthenticate(t *testing.T) {
	ps := Principals{
		{Name: "n8n", TokenSHA256: HashToken("tok-n8n"), Roles: []Role{RoleExporter}},
		{Name: "audit", TokenSHA256: HashToken("tok-audit"), Roles: []Role{RoleAuditor}},
		{Name: "ops", TokenSHA256: HashToken("tok-ops"), Roles: []Role{RoleOperator, RoleAuditor}},
	}
	tests := []struct {
		token string
		want  string // "" for no match
	}{
		{"tok-n8n", "n8n"},
		{"tok-audit", "audit"},
		{"tok-ops", "ops"},
		{"tok-ops ", ""},
		{"TOK-OPS", ""},
		{"", ""},
		{HashToken("tok-ops"), ""}, // the stored hash is not a token
		{"tok", ""},
	}
	for _, tt := range tests {
		p, ok := ps.Authenticate(tt.token)
		if ok != (tt.want != "") {
			t.Errorf("Authenticate(%q) ok = %v, want %v", tt.token, ok, tt.want != "")
			continue
		}
		if ok && p.Name != tt.want {
			t.Errorf("Authenticate(%q) = %s, want %s", tt.token, p.Name, tt.want)
		}
		if ok && p != &ps[indexOf(ps, tt.want)] {
			t.Errorf("Authenticate(%q) returned a copy, not the configured principal", tt.token)
		}
	}
	if p, ok := Principals(nil).Authenticate("x"); ok || p != nil {
		t.Error("empty principals authenticated")
	}
}

func indexOf(ps Principals, name string) int {
	for i := range ps {
		if ps[i].Name == name {
			return i
		}
	}
	return -1
}

func TestHas(t *testing.T) {
	p := &Principal{Name: "x", Roles: []Role{RoleAuditor, RoleOperator}}
	for role, want := range map[Role]bool{RoleAuditor: true, RoleOperator: true, RoleExporter: false, "admin": false} {
		if got := p.Has(role); got != want {
			t.Errorf("Has(%s) = %v, want %v", role, got, want)
		}
	}
	var nilp *Principal
	if nilp.Has(RoleAuditor) {
		t.Error("nil principal has a role")
	}
	for _, r := range []Role{RoleExporter, RoleAuditor, RoleOperator} {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	if Role("Exporter").Valid() {
		t.Error("roles are case-sensitive")
	}
}
