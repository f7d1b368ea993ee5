package media_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/media"
)

// ring accepts replies signed by one key.
type ring struct {
	keyID string
	pub   ed25519.PublicKey
}

func (r ring) ReplyKey(_ context.Context, keyID string, _ uint64, _ [][]byte) (ed25519.PublicKey, error) {
	if keyID != r.keyID {
		return nil, errors.New("unknown key")
	}
	return r.pub, nil
}

type archiveKey struct {
	ring
	*bundletest.ArchiveKey
}

func newArchiveKey(t *testing.T) *archiveKey {
	t.Helper()
	k, err := bundletest.NewArchiveKey()
	if err != nil {
		t.Fatal(err)
	}
	return &archiveKey{ring: ring{keyID: k.KeyID, pub: k.Pub}, ArchiveKey: k}
}

func (k *archiveKey) receipt(t *testing.T, data []byte, device string) []byte {
	t.Helper()
	raw, err := k.Receipt(sha256.Sum256(data), device)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (k *archiveKey) rejection(t *testing.T, data []byte, device string) []byte {
	t.Helper()
	raw, err := sync.SignRejection(&sync.Rejection{BundleDigest: wire.FormatHash(sha256.Sum256(data)), Device: device, Reason: "test: refused",
		Checks: []string{"archive.gap"}, Time: time.Now().UTC().Format(time.RFC3339)}, k.KeyID, k.Priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMediaImportReceipts: a verified receipt for an outbox bundle is
// journaled and only then its entry deleted; a receipt journaled before
// is a no-op; a rejection is reported and the entry stays, or is
// superseded once the bundle is delivered; whatever does not verify, names
// another device or a bundle not in the outbox, or is too large, is bad
// and changes nothing.
func TestMediaImportReceipts(t *testing.T) {
	k := newArchiveKey(t)
	const dev = "site/dev"
	ob := newOutbox("000000000001", "one", "000000000002", "two", "000000000003", "three")
	journaled := map[string][]byte{"000000000000": k.receipt(t, []byte("zero"), dev)}
	var order []string
	opts := media.ImportOptions{
		Outbox:    ob,
		Journaled: func(context.Context) (map[string][]byte, error) { return journaled, nil },
		JournalReceipt: func(_ context.Context, id string, raw []byte) error {
			if _, pending := ob.data[id]; !pending {
				t.Errorf("journaled %s, not in the outbox", id)
			}
			order = append(order, "journal "+id)
			journaled[id] = raw
			return nil
		},
		Ring: k.ring, Device: dev, Log: discard(),
	}
	dir := filepath.Join(t.TempDir(), media.ReceiptsDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.receipt.json", k.receipt(t, []byte("one"), dev))
	write(t, dir, "b.receipt.json", k.receipt(t, []byte("zero"), dev))         // already delivered
	write(t, dir, "c.receipt.json", k.receipt(t, []byte("two"), "site/other")) // another device
	write(t, dir, "d.receipt.json", []byte("not a receipt"))
	write(t, dir, "e.receipt.json", k.receipt(t, []byte("nine"), dev)) // not in the outbox
	write(t, dir, "f.receipt.json", bytes.Repeat([]byte{' '}, media.MaxReplySize+1))
	write(t, dir, ".hidden.receipt.json", k.receipt(t, []byte("two"), dev))
	write(t, dir, "a.rejection.json", k.rejection(t, []byte("three"), dev))
	write(t, dir, "b.rejection.json", k.rejection(t, []byte("one"), dev)) // superseded
	if err := os.Symlink(filepath.Join(dir, "a.receipt.json"), filepath.Join(dir, "link.receipt.json")); err != nil {
		t.Fatal(err)
	}
	receipts, rejections, err := media.ListReplies(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 6 || len(rejections) != 2 {
		t.Fatalf("listed %v %v", receipts, rejections)
	}
	var out bytes.Buffer
	opts.Out = &out
	sum, err := media.ImportReceipts(t.Context(), receipts, rejections, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := media.Summary{Delivered: 1, Already: 1, Rejected: 1, Superseded: 1, Bad: 4, Left: 2}
	if sum != want {
		t.Fatalf("summary %+v, want %+v\n%s", sum, want, out.String())
	}
	if _, ok := ob.data["000000000001"]; ok || len(ob.ids) != 2 || len(order) != 1 || order[0] != "journal 000000000001" {
		t.Fatalf("outbox %v, journaled %v", ob.ids, order)
	}
	for _, line := range []string{
		"a.receipt.json  000000000001  delivered (archive log index 0)\n",
		"b.receipt.json  000000000000  already delivered\n",
		"c.receipt.json  BAD: for device site/other, not site/dev\n",
		"d.receipt.json  BAD: does not verify against the archive key: ",
		"e.receipt.json  BAD: names bundle sha256:",
		"f.receipt.json  BAD: unreadable: ",
		"a.rejection.json  000000000003  REJECTED by the archive: test: refused (checks: archive.gap); kept in the outbox\n",
		"b.rejection.json  000000000001  rejection superseded: delivered since\n",
		"1 delivered, 1 already delivered, 1 rejected, 1 superseded rejection(s), 4 bad; 2 bundle(s) left in the outbox\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}

	// A second import of the same folder changes nothing more.
	out.Reset()
	sum, err = media.ImportReceipts(t.Context(), receipts, rejections, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := (media.Summary{Already: 2, Rejected: 1, Superseded: 1, Bad: 4, Left: 2}); sum != want {
		t.Fatalf("second import %+v, want %+v\n%s", sum, want, out.String())
	}
}
