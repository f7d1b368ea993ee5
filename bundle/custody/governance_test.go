package custody

import "testing"

func TestParseGovernanceAlertBody(t *testing.T) {
	h := "sha256:ab"
	for i := 0; i < 31; i++ {
		h += "ab"
	}
	good := []string{
		`{"kind":"schema.changed","subject":"doc@1","policy":"` + h + `","detail":"x"}`,
		`{"kind":"signer.unknown","subject":"sha256:1,sha256:2","detail":""}`,
	}
	for _, b := range good {
		if _, err := ParseGovernanceAlertBody([]byte(b)); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	bad := []string{
		`{"kind":"nope","subject":"x","detail":""}`,
		`{"kind":"destination.new","subject":"","detail":""}`,
		`{"kind":"destination.new","subject":"x","detail":"","extra":1}`,
		`{"kind":"destination.new","subject":"x","policy":"md5:1","detail":""}`,
		`[]`,
	}
	for _, b := range bad {
		if _, err := ParseGovernanceAlertBody([]byte(b)); err == nil {
			t.Errorf("%s: accepted", b)
		}
	}
}

func FuzzParseGovernanceAlertBody(f *testing.F) {
	f.Add([]byte(`{"kind":"schema.changed","subject":"doc@1","detail":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := ParseGovernanceAlertBody(b); err == nil && (g.Subject == "" || !alertKinds[g.Kind]) {
			t.Fatalf("accepted %q", b)
		}
	})
}
