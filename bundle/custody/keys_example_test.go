package custody_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

// ExampleParseKeyRotateBody reads the key.rotate record of the test
// vectors: the rotation statement inside is signed by the old key and
// names the new key with its certification by the AK.
func ExampleParseKeyRotateBody() {
	raw, err := os.ReadFile("testdata/keys/vectors.json")
	if err != nil {
		panic(err)
	}
	var v struct {
		Records []string `json:"records"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		panic(err)
	}
	r, err := custody.ParseRecord([]byte(v.Records[1]))
	if err != nil {
		panic(err)
	}
	body, st, err := custody.ParseKeyRotateBody(r.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Type, st.Device, st.Reason)
	fmt.Println("signed by the old key:", body.Statement.Signatures[0].KeyID == body.OldKeyID)
	fmt.Println("new key id names its public area:", custody.KeyID(st.NewPublic) == body.NewKeyID)
	// Output:
	// key.rotate site1/dev1 scheduled
	// signed by the old key: true
	// new key id names its public area: true
}
