package archivesig_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

func FuzzParseReceipt(f *testing.F) {
	raw, _, _ := archiveReceipt(f, 5, 3)
	f.Add(raw)
	// The reply vectors' receipts carrying a content key announcement
	// and a consistency proof.
	if b, err := os.ReadFile("../../testdata/vectors/replies-v1.json"); err == nil {
		var v struct {
			ReceiptContentKey  string `json:"receiptContentKey"`
			ReceiptConsistency string `json:"receiptConsistency"`
		}
		if json.Unmarshal(b, &v) == nil {
			for _, s := range []string{v.ReceiptContentKey, v.ReceiptConsistency} {
				if s != "" {
					f.Add([]byte(s))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		env, r, err := archivesig.ParseReceipt(in)
		if err != nil {
			return
		}
		out, err := r.Marshal()
		if err != nil || !bytes.Equal(out, env.Payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseArchiveKey(f *testing.F) {
	for _, v := range makeArchiveKeyVectors(f) {
		f.Add([]byte(v.Announcement))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		env, a, err := archivesig.ParseArchiveKey(in)
		if err != nil {
			return
		}
		if env.VerifyEd25519(a.NewKeyID, a.NewKey) != nil {
			t.Fatal("accepted an announcement not signed by its new key")
		}
		if out, err := env.Marshal(); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes that do not round-trip: %v", err)
		}
		k := archivesig.NewArchiveKeys(a.Origin)
		if ok, err := k.Learn(in); ok || err == nil {
			t.Fatal("learned an announcement without trusting its old key")
		}
	})
}

func FuzzParseKeyChainFile(f *testing.F) {
	vs := makeArchiveKeyVectors(f)
	b, err := (&archivesig.KeyChainFile{Origin: "edgeseal-archive", Announcements: [][]byte{[]byte(vs[0].Announcement)}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"announcements":[],"origin":"a","v":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		kf, err := archivesig.ParseKeyChainFile(in)
		if err != nil {
			return
		}
		out, err := kf.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes that do not round-trip: %v", err)
		}
	})
}
