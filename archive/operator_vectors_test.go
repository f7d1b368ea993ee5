package archive_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// TestOperatorStatementVectors checks testdata/operator-statement-v1.json:
// the valid statements parse, are signed by the seed's key and have the
// leaf hash computed outside Go; the refused ones fail with their text.
func TestOperatorStatementVectors(t *testing.T) {
	checkStatementVectors(t, "testdata/operator-statement-v1.json")
}

// TestDeviceStatementVectors checks testdata/device-statement-v1.json,
// the device statements, as TestOperatorStatementVectors, and that its
// approval with a trustFile carries testdata/device-statement-trust.json.
func TestDeviceStatementVectors(t *testing.T) {
	valid := checkStatementVectors(t, "testdata/device-statement-v1.json")
	trust, err := os.ReadFile("testdata/device-statement-trust.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range valid {
		if s.TrustFile == nil {
			continue
		}
		n++
		if !bytes.Equal(s.TrustFile, trust) || s.TrustDigest != archive.TrustDigest(trust) {
			t.Fatalf("the approval's trustFile is not testdata/device-statement-trust.json")
		}
	}
	if n != 1 {
		t.Fatalf("%d approvals with a trustFile, want 1", n)
	}
}

func checkStatementVectors(t *testing.T, file string) []*archive.OperatorStatement {
	t.Helper()
	var parsed []*archive.OperatorStatement
	var v struct {
		Seed, KeyID string
		Valid       []struct{ Statement, LeafHash string }
		Refused     []struct{ Statement, Error string }
	}
	readVectorFile(t, file, &v)
	seed, err := hex.DecodeString(v.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("seed: %v", err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if archive.KeyID(pub) != v.KeyID || len(v.Valid) < 2 || len(v.Refused) < 5 {
		t.Fatalf("vectors: key %s, %d valid, %d refused", v.KeyID, len(v.Valid), len(v.Refused))
	}
	for i, c := range v.Valid {
		s, err := archive.ParseOperatorStatement([]byte(c.Statement))
		if err != nil {
			t.Fatalf("valid %d: %v", i, err)
		}
		parsed = append(parsed, s)
		leaf := merkle.LeafHash([]byte(c.Statement))
		if !s.Operator.Equal(pub) || hex.EncodeToString(leaf[:]) != c.LeafHash {
			t.Fatalf("valid %d: operator or leaf hash differs", i)
		}
	}
	for i, c := range v.Refused {
		_, err := archive.ParseOperatorStatement([]byte(c.Statement))
		if err == nil || !strings.Contains(err.Error(), c.Error) {
			t.Errorf("refused %d: %v, want an error containing %q", i, err, c.Error)
		}
	}
	return parsed
}
