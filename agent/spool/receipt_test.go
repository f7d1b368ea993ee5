package spool

import (
	"encoding/json"
	"testing"
	"time"
)

// The receipt file keeps its JSON shape byte for byte: the receipt's
// fields in the order and with the names the agent's API answers, then
// file and time.
func TestReceiptFileShape(t *testing.T) {
	rc := Receipt{ExportID: "inv-1", Seq: 41, Leaf: "sha256:ab", Size: 42, Digest: "sha256:cd"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	const want = `{
  "exportId": "inv-1",
  "seq": 41,
  "leaf": "sha256:ab",
  "journalSize": 42,
  "digest": "sha256:cd",
  "file": "a.json",
  "time": "2026-01-02T03:04:05.000006Z"
}
`
	if got := string(receiptFile("a.json", rc, now)); got != want {
		t.Fatalf("receipt file:\n%s\nwant:\n%s", got, want)
	}
	rc.Duplicate = true
	b, err := json.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	const wantDup = `{"exportId":"inv-1","seq":41,"leaf":"sha256:ab","journalSize":42,"digest":"sha256:cd","duplicate":true}`
	if string(b) != wantDup {
		t.Fatalf("receipt: %s, want %s", b, wantDup)
	}
}
