package recovery_test

import (
	"bytes"
	"fmt"

	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// An operator makes a recovery key pair; enrollment wraps the device's
// data key to the public half; after a TPM clear the private half opens it.
func Example() {
	priv, err := recovery.GenerateKey()
	if err != nil {
		panic(err)
	}
	pubFile := priv.Public().MarshalPEM() // recovery.key.pub, given to enrollment
	privFile, err := priv.MarshalPEM()    // recovery.key, kept offline (0600)
	if err != nil {
		panic(err)
	}

	pub, err := recovery.ParsePublicKey(pubFile)
	if err != nil {
		panic(err)
	}
	dataKey := bytes.Repeat([]byte{7}, recovery.DataKeySize)
	w, err := recovery.Seal(pub, "plant-3/press-7", dataKey)
	if err != nil {
		panic(err)
	}
	file, err := w.Marshal() // data-key.recovery.json in the TPM state dir
	if err != nil {
		panic(err)
	}

	w2, err := recovery.Parse(file)
	if err != nil {
		panic(err)
	}
	key, err := recovery.ParsePrivateKey(privFile)
	if err != nil {
		panic(err)
	}
	got, err := w2.Open(key)
	fmt.Println(w2.Device, bytes.Equal(got, dataKey), err)
	// Output: plant-3/press-7 true <nil>
}
