package archive_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
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
// the device statements, as TestOperatorStatementVectors.
func TestDeviceStatementVectors(t *testing.T) {
	checkStatementVectors(t, "testdata/device-statement-v1.json")
}

func checkStatementVectors(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Seed, KeyID string
		Valid       []struct{ Statement, LeafHash string }
		Refused     []struct{ Statement, Error string }
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
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
}
