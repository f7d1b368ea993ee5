package bundle_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// A format 2 seal names every file but the payloads, the manifests and
// itself, and keys/signing.pem is the PEM form of keys/signing.pub.
func ExampleSealSubjectNames() {
	raw, err := os.ReadFile("testdata/unique/good.tar")
	if err != nil {
		panic(err)
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		panic(err)
	}
	env, st, err := b.Statement()
	if err != nil {
		panic(err)
	}
	fmt.Println("format", bundle.FormatOf(st.PredicateType), "signatures", len(env.Signatures))
	for _, s := range st.Subject {
		fmt.Println(s.Name)
	}
	pem, err := bundle.SigningPEM(b.Files[bundle.PathSigningPub])
	if err != nil {
		panic(err)
	}
	fmt.Println("signing.pem matches:", bytes.Equal(pem, b.Files[bundle.PathSigningPEM]))
	fmt.Println("key id:", env.Signatures[0].KeyID == custody.KeyID(b.Files[bundle.PathSigningPub]))
	// Output:
	// format 2 signatures 1
	// data/records.jsonl
	// attestation/quote.msg
	// attestation/quote.pcrs
	// attestation/quote.sig
	// bag-info.txt
	// bagit.txt
	// keys/ak.pem
	// keys/ak.pub
	// keys/certify.msg
	// keys/certify.sig
	// keys/ek.pub
	// keys/signing.pem
	// keys/signing.pub
	// signing.pem matches: true
	// key id: true
}
