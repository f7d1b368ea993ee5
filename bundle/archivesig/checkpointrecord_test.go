package archivesig

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

var updateCheckpointRecord = flag.Bool("update-checkpoint-record", false, "rewrite testdata/checkpoint-record-v1.json")

const checkpointRecordVectors = "testdata/checkpoint-record-v1.json"

// checkpointRecordFile is testdata/checkpoint-record-v1.json.
type checkpointRecordFile struct {
	Description   string `json:"description"`
	ReceiptDigest string `json:"receiptDigest"`
	Body          string `json:"body"`
	Refused       []struct {
		Why  string `json:"why"`
		Body string `json:"body"`
	} `json:"refused"`
}

// TestCheckpointRecordVectors: the archive.checkpoint body of the
// receiptConsistency receipt of testdata/vectors/replies-v1.json is the
// vector's bytes, parses, and its proof verifies from that file's
// archiveCheckpointBefore to its note; the changed bodies are refused.
func TestCheckpointRecordVectors(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/vectors/replies-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var replies struct {
		ReceiptConsistency string `json:"receiptConsistency"`
		Before             string `json:"archiveCheckpointBefore"`
	}
	if err := json.Unmarshal(raw, &replies); err != nil {
		t.Fatal(err)
	}
	_, r, err := ParseReceipt([]byte(replies.ReceiptConsistency))
	if err != nil {
		t.Fatal(err)
	}
	digest := wire.FormatHash(sha256.Sum256([]byte(replies.ReceiptConsistency)))
	body, err := NewCheckpointRecord(r, digest).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *updateCheckpointRecord {
		f := checkpointRecordFile{
			Description:   "the archive.checkpoint record body (docs/formats.md) of the receiptConsistency receipt of testdata/vectors/replies-v1.json, receiptDigest the SHA-256 of that receipt's bytes, and changed bodies a reader must refuse",
			ReceiptDigest: digest, Body: string(body),
		}
		add := func(why, b string) {
			f.Refused = append(f.Refused, struct {
				Why  string `json:"why"`
				Body string `json:"body"`
			}{why, b})
		}
		s := string(body)
		add("unknown member", strings.Replace(s, `{"checkpoint"`, `{"a":1,"checkpoint"`, 1))
		add("not canonical (whitespace)", strings.Replace(s, `,"receipt"`, `, "receipt"`, 1))
		add("receipt not a hash", strings.Replace(s, `"receipt":"sha256:`, `"receipt":"SHA256:`, 1))
		add("proof without witnessFrom", strings.Replace(s, `,"witnessFrom":2`, ``, 1))
		add("witnessFrom beyond the checkpoint", strings.Replace(s, `"witnessFrom":2`, `"witnessFrom":4`, 1))
		add("checkpoint not a signed note", strings.Replace(s, `\n\n`+"\u2014 ", `\n\n- `, 1))
		add("proof hash of 31 bytes", strings.Replace(s, `"witnessProof":["`, `"witnessProof":["AAAA`, 1))
		out, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(checkpointRecordVectors, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vraw, err := os.ReadFile(checkpointRecordVectors)
	if err != nil {
		t.Fatal(err)
	}
	var v checkpointRecordFile
	if err := json.Unmarshal(vraw, &v); err != nil {
		t.Fatal(err)
	}
	if v.ReceiptDigest != digest || !bytes.Equal([]byte(v.Body), body) {
		t.Fatalf("body %s, vector %s", body, v.Body)
	}
	c, err := ParseCheckpointRecord([]byte(v.Body))
	if err != nil {
		t.Fatal(err)
	}
	before, err := merkle.ParseAnyCheckpoint([]byte(replies.Before))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.Root()
	if err != nil || c.WitnessFrom != before.Size {
		t.Fatalf("root %v, witnessFrom %d", err, c.WitnessFrom)
	}
	if err := merkle.VerifyConsistency(merkle.ProofHashes(c.WitnessProof), before.Size, cp.Size, before.Root, cp.Root); err != nil {
		t.Fatal(err)
	}
	if len(v.Refused) < 7 {
		t.Fatalf("%d refused bodies", len(v.Refused))
	}
	for _, x := range v.Refused {
		if x.Body == v.Body {
			t.Fatalf("%s: unchanged", x.Why)
		}
		if _, err := ParseCheckpointRecord([]byte(x.Body)); err == nil {
			t.Errorf("%s: taken", x.Why)
		}
	}
}
