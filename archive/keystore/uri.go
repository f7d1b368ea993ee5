package keystore

import (
	"fmt"
	"net/url"
	"strings"
)

// URI is the part of a PKCS#11 URI (RFC 7512) this package uses: the
// token label and the key's object label.
type URI struct {
	Token  string
	Object string
}

// String is the URI in its "pkcs11:token=..;object=.." form.
func (u URI) String() string {
	return "pkcs11:token=" + url.PathEscape(u.Token) + ";object=" + url.PathEscape(u.Object)
}

// IsPKCS11 reports whether s names a token key (starts with "pkcs11:").
func IsPKCS11(s string) bool { return strings.HasPrefix(s, "pkcs11:") }

// ParseURI reads "pkcs11:token=LABEL;object=LABEL" (attributes in any
// order, percent-encoded; type=private is allowed; others and query
// attributes are refused, so a PIN never sits in the URI).
func ParseURI(s string) (URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return URI{}, fmt.Errorf("keystore: %.80q is not a pkcs11: URI", s)
	}
	if strings.Contains(rest, "?") {
		return URI{}, fmt.Errorf("keystore: %.80q: query attributes (a PIN) are not taken from the URI; configure the PIN file or variable", s)
	}
	var u URI
	for attr := range strings.SplitSeq(rest, ";") {
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return URI{}, fmt.Errorf("keystore: %.80q: attribute %.40q without '='", s, attr)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return URI{}, fmt.Errorf("keystore: %.80q: %w", s, err)
		}
		switch k {
		case "token":
			u.Token = val
		case "object":
			u.Object = val
		case "type":
			if val != "private" {
				return URI{}, fmt.Errorf("keystore: %.80q: type %q, want private", s, val)
			}
		default:
			return URI{}, fmt.Errorf("keystore: %.80q: unsupported attribute %q (want token and object)", s, k)
		}
	}
	if u.Token == "" || u.Object == "" {
		return URI{}, fmt.Errorf("keystore: %.80q: token and object are required", s)
	}
	return u, nil
}
