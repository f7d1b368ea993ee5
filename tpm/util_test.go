package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"os"
	"testing"
)

func elliptic256() elliptic.Curve { return elliptic.P256() }
func hexs(b []byte) string        { return hex.EncodeToString(b) }

func ecdsaVerify(k *ecdsa.PublicKey, d, sig []byte) bool { return ecdsa.VerifyASN1(k, d, sig) }

// ramDir is a temporary directory on /dev/shm when there is one.
func ramDir(t testing.TB) string {
	d, err := os.MkdirTemp("/dev/shm", "edgeseal-tpm-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
