package bundle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"
)

// FuzzSealSig: checkSealSig accepts only DER with nothing after it;
// what it accepts as low s, lowS leaves alone; lowS of any accepted
// signature is accepted as low s.
func FuzzSealSig(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("seal"))
	for range 4 {
		sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
		f.Add(sig)
	}
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	f.Add([]byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01}) // r not minimal
	f.Fuzz(func(t *testing.T, in []byte) {
		if CheckSealSig(in, false) != nil {
			return
		}
		var sig ecdsaSig
		if rest, err := asn1.Unmarshal(in, &sig); err != nil || len(rest) != 0 {
			t.Fatalf("accepted what asn1 does not read: %v", err)
		}
		low := lowS(in)
		if err := CheckSealSig(low, true); err != nil {
			t.Fatalf("lowS gave %x: %v", low, err)
		}
		if CheckSealSig(in, true) == nil && string(low) != string(in) {
			t.Fatal("lowS changed a low-s signature")
		}
	})
}

// TestLowSVerifies: the low-s form of a signature verifies as the
// original does.
func TestLowSVerifies(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("seal"))
	n := elliptic.P256().Params().N
	for range 16 {
		sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
		var s ecdsaSig
		if _, err := asn1.Unmarshal(sig, &s); err != nil {
			t.Fatal(err)
		}
		high := s
		if s.S.Cmp(p256HalfN) <= 0 {
			high.S = new(big.Int).Sub(n, s.S)
		}
		hb, _ := asn1.Marshal(high)
		if CheckSealSig(hb, true) == nil {
			t.Fatal("high s accepted")
		}
		low := lowS(hb)
		if !ecdsa.VerifyASN1(&key.PublicKey, d[:], low) || CheckSealSig(low, true) != nil {
			t.Fatal("low-s form does not verify or is refused")
		}
	}
}
