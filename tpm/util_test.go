package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
)

func elliptic256() elliptic.Curve { return elliptic.P256() }
func hexs(b []byte) string        { return hex.EncodeToString(b) }

func ecdsaVerify(k *ecdsa.PublicKey, d, sig []byte) bool { return ecdsa.VerifyASN1(k, d, sig) }
