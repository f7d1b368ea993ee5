package archive_test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

type statementVectors struct {
	Comment string `json:"comment"`
	Valid   struct {
		Statement string `json:"statement"`
		LeafHash  string `json:"leafHash"`
	} `json:"valid"`
	Invalid []struct {
		Name      string `json:"name"`
		Statement string `json:"statement"`
		Error     string `json:"error"`
	} `json:"invalid"`
}

func readStatementVectors(t testing.TB) statementVectors {
	return vectorsFrom[statementVectors](t, "testdata/epoch-statement-v1.json")
}

// refused are the invalid statements as refusedVectors.
func (v statementVectors) refused() []refusedVector {
	out := make([]refusedVector, 0, len(v.Invalid))
	for _, c := range v.Invalid {
		out = append(out, refusedVector{Name: c.Name, Input: c.Statement, Error: c.Error})
	}
	return out
}

// TestEpochStatementVectors pins the operator statement format: the
// valid statement parses, marshals back to the same bytes and hashes to
// the leaf computed independently; each invalid one is refused with an
// error naming what is wrong.
func TestEpochStatementVectors(t *testing.T) {
	v := readStatementVectors(t)
	s, err := archive.ParseEpochStatement([]byte(v.Valid.Statement))
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Marshal()
	if err != nil || string(again) != v.Valid.Statement {
		t.Fatalf("marshal back: %v\n%s", err, again)
	}
	if got := wire.FormatHash(merkle.LeafHash(again)); got != v.Valid.LeafHash {
		t.Fatalf("leaf hash %s, vector %s", got, v.Valid.LeafHash)
	}
	if s.ParsedTrust() == nil || s.ParsedTrust().KeyID != s.KeyID || s.Closed.Epoch != 1 || s.Epoch != 2 {
		t.Fatalf("parsed %+v", s)
	}
	parse := func(b []byte) error { _, err := archive.ParseEpochStatement(b); return err }
	checkRefused(t, "statement", 10, v.refused(), parse)
	checkOversize(t, "statement", `{"v":1`, archive.MaxStatementSize, parse)
}

// ExampleParseEpochStatement reads the rekey statement an operator's
// `edgeseal archive devices rekey` appended to the archive log.
func ExampleParseEpochStatement() {
	b, err := os.ReadFile("testdata/epoch-statement-v1.json")
	if err != nil {
		panic(err)
	}
	var v struct {
		Valid struct{ Statement string } `json:"valid"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	s, err := archive.ParseEpochStatement([]byte(v.Valid.Statement))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: epoch %d closed at checkpoint %d (%d bundles, counter %d) by %s: %s\n",
		s.Device, s.Closed.Epoch, s.Closed.CheckpointSize, s.Closed.Bundles, s.Closed.Counter, s.By, s.Reason)
	fmt.Printf("epoch %d opened at %s\n", s.Epoch, s.Time)
	// Output:
	// site1/dev1: epoch 1 closed at checkpoint 96 (12 bundles, counter 12) by alice: board replaced after a TPM fault
	// epoch 2 opened at 2026-12-07T03:00:00.000000Z
}
