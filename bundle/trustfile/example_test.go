package trustfile_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// An operator authorizes the PCR values a device shows after a firmware
// update; the device (and any verifier) checks the statement against the
// device's PCR-policy key before using it.
func ExampleSignPCRAuthorization() {
	operator, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // kept offline
	values := map[int][]byte{}
	for _, p := range []int{0, 2, 4, 7} {
		values[p] = make([]byte, 32)
		values[p][0] = byte(p)
	}
	a, err := trustfile.SignPCRAuthorization(operator, "plant-7/line-3", []int{0, 2, 4, 7}, values,
		time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	raw, _ := a.Marshal() // what `edgeseal tpm authorize-pcrs` writes

	got, err := trustfile.ParsePCRAuthorization(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println("this device:", got.Verify(&operator.PublicKey, "plant-7/line-3") == nil)
	fmt.Println("another device:", got.Verify(&operator.PublicKey, "plant-7/line-4"))
	pcrs, _ := got.PCRs()
	fmt.Println("pcrs:", pcrs, "approvedPolicy:", got.ApprovedPolicy[:16]+"...")
	// Output:
	// this device: true
	// another device: bundle: pcr authorization: device: authorizes plant-7/line-3, this device is plant-7/line-4
	// pcrs: [0 2 4 7] approvedPolicy: 1fb3912f08d483e9...
}
