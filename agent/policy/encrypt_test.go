package policy

import "testing"

// TestEncrypt: every export is encrypted by default; a workflow's
// encrypt: false and plaintext_classifications turn it off.
func TestEncrypt(t *testing.T) {
	p, err := Parse([]byte(`version: 1
plaintext_classifications: [public]
workflows:
  - name: secret
    classifications: [internal, public]
    retention: short
    destinations: [archive]
    principals: [p]
    max_size: 100
  - name: open
    encrypt: false
    classifications: [internal]
    retention: short
    destinations: [archive]
    principals: [p]
    max_size: 100
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		wf, class string
		want      bool
	}{{"secret", "internal", true}, {"secret", "public", false}, {"open", "internal", false}, {"unknown", "internal", true}} {
		if got := p.Encrypt(c.wf, c.class); got != c.want {
			t.Errorf("Encrypt(%s, %s) = %v, want %v", c.wf, c.class, got, c.want)
		}
	}
}
