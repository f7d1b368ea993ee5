package keystore_test

import (
	"testing"

	"github.com/edgeseal/edgeseal/archive/keystore"
)

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=edge;object=archive")
	f.Add("pkcs11:object=a%3Bb;token=t;type=private")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := keystore.ParseURI(s)
		if err != nil {
			return
		}
		if u.Token == "" || u.Object == "" {
			t.Fatalf("%q: empty part accepted", s)
		}
		back, err := keystore.ParseURI(u.String())
		if err != nil || back != u {
			t.Fatalf("%q: round trip %+v %v", s, back, err)
		}
	})
}
