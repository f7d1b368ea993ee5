package proof_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

var update = flag.Bool("update", false, "rewrite testdata/ (the proof vectors) from a fresh chain")

// vectorCase is one tampered proof of testdata/cases.json and the check
// that must fail on it.
type vectorCase struct {
	File  string `json:"file"`
	Check string `json:"check"`
	Desc  string `json:"description"`
}

// tampers are the golden tampered proofs: each a copy of the good proof
// changed in one way.
var tampers = []struct {
	vectorCase
	fn func(p *proof.Proof, f, other *fixture, t *testing.T)
}{
	{vectorCase{"payload.changed.json", proof.CheckPayloadDigest, "one payload byte changed"},
		func(p *proof.Proof, _, _ *fixture, _ *testing.T) { p.Payload[3] ^= 1 }},
	{vectorCase{"record.changed.json", proof.CheckRecordsInclusion, "the export record's app changed (still canonical)"},
		func(p *proof.Proof, _, _ *fixture, _ *testing.T) {
			p.Records[0].Record = replaceOnce(p.Records[0].Record, `"app":"n8n"`, `"app":"n8x"`)
		}},
	{vectorCase{"path.wrong.json", proof.CheckRecordsInclusion, "one hash of the record's inclusion proof changed"},
		func(p *proof.Proof, _, _ *fixture, _ *testing.T) { p.Records[0].Inclusion[0][0] ^= 1 }},
	{vectorCase{"quote.otherdevice.json", proof.CheckKeysTrusted, "seal, quote and key files of another TPM sealing under the same device name"},
		func(p *proof.Proof, _, other *fixture, t *testing.T) {
			b := other.Chain.Bundles[1]
			p.Seal = b.Files[bundle.PathSeal]
			for _, name := range proof.Files {
				if data, ok := b.Files[name]; ok {
					p.Files[name] = data
				}
			}
		}},
	{vectorCase{"receipt.otherbundle.json", proof.CheckReceiptBundle, "the archive's receipt for the device's next bundle"},
		func(p *proof.Proof, f, _ *fixture, _ *testing.T) { p.Receipt = f.Receipts[2] }},
}

func replaceOnce(s, old, repl string) string {
	i := len(s)
	for j := range len(s) - len(old) + 1 {
		if s[j:j+len(old)] == old {
			i = j
			break
		}
	}
	if i == len(s) {
		return s
	}
	return s[:i] + repl + s[i+len(old):]
}

// TestVectors verifies testdata/good.json and fails each tampered proof of
// testdata/cases.json with its check (go test -run TestVectors -update
// writes them again from a fresh chain).
func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	read := func(name string) *proof.Proof {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := proof.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return p
	}
	if rep := proof.Verify(read("good.json"), proof.Options{}); !rep.OK() {
		t.Fatalf("good.json: %v\n%s", rep.Failed(), rep)
	}
	raw, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []vectorCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != len(tampers) {
		t.Fatalf("%d cases in testdata, %d in the table", len(cases), len(tampers))
	}
	for _, c := range cases {
		rep := proof.Verify(read("tampered/"+c.File), proof.Options{})
		if rep.OK() || !slices.Contains(rep.Failed(), c.Check) {
			t.Errorf("%s (%s): failed %v, want %s", c.File, c.Desc, rep.Failed(), c.Check)
		}
	}
}

func writeVectors(t *testing.T) {
	f := newFixture(t, 3, bundletest.Options{Site: "site1", Device: "dev1"})
	other := newFixture(t, 3, bundletest.Options{Site: "site1", Device: "dev1"})
	id := f.export(t, 1).ExportID
	write := func(name string, v []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join("testdata", name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good, err := f.MustProof(t, 1, id).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write("good.json", good)
	var cases []vectorCase
	for _, tc := range tampers {
		p := f.MustProof(t, 1, id)
		tc.fn(p, f, other, t)
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		write("tampered/"+tc.File, raw)
		cases = append(cases, tc.vectorCase)
	}
	raw, _ := json.MarshalIndent(cases, "", "  ")
	write("cases.json", append(raw, '\n'))
}
