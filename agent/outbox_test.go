package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

type logBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// An export goes journaled -> sealed -> sent -> archived, the last from
// the journaled receipt of a real archive, and stays archived after a
// restart (sent does not survive one). A small outbox quota raises the
// alarm once on crossing (logged and handed to the alarm sink) and once
// on recovery, and refuses nothing.
func TestOutboxQuotaAndDeliveryStatus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logs := &logBuffer{}
	const quota = 1024
	withQuota := func(o *Options) {
		o.OutboxQuota = quota
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), withQuota)
	status := func(id string) *ExportInfo {
		t.Helper()
		info, err := r.core.ExportStatus(ctx, n8n.Name, id)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	usage := func() *Status {
		t.Helper()
		st, err := r.core.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const overLine, underLine = "OUTBOX OVER QUOTA", "outbox back under its quota"
	ingest := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := r.core.Ingest(ctx, n8n, "api", invoice(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.withPolicy()

	ingest("a-0", "a-1")
	if got := status("a-0").Status; got != StatusJournaled {
		t.Fatalf("before a seal: %s", got)
	}
	if st := usage(); st.OutboxOverQuota || st.OutboxBytes != 0 || st.OutboxQuota != quota {
		t.Fatalf("empty outbox: %+v", st)
	}
	res1, _ := r.seal()
	st := usage()
	if !st.OutboxOverQuota || st.Outbox != 1 || st.OutboxBytes < int64(res1.Bytes) || st.OutboxBytes > int64(res1.Bytes)+256 {
		t.Fatalf("after a %d-byte bundle: %+v", res1.Bytes, st)
	}
	if info := status("a-0"); info.Status != StatusSealed || info.Bundle != res1.ID {
		t.Fatalf("after the seal: %+v", info)
	}
	// Over quota, exports are still journaled and sealed; the alarm is
	// logged once.
	ingest("b-0", "b-1")
	res2, _ := r.seal()
	usage()
	if n := logs.count(overLine); n != 1 {
		t.Fatalf("%d over-quota lines, want 1", n)
	}
	// The alarm went to the sink once too (kept until one is set).
	var alarms []Alarm
	r.core.SetAlarmSink(func(a Alarm) { alarms = append(alarms, a) })
	if len(alarms) != 1 || alarms[0].Kind != AlarmOutboxQuota || alarms[0].Seq != -1 || !strings.Contains(alarms[0].Detail, "quota of 1024 bytes") {
		t.Fatalf("alarms %+v", alarms)
	}
	if info := status("b-1"); info.Status != StatusSealed || info.Bundle != res2.ID {
		t.Fatalf("second bundle: %+v", info)
	}
	r.core.MarkSent(res1.ID)
	if got := status("a-1").Status; got != StatusSent {
		t.Fatalf("after the PUBACK: %s", got)
	}

	// A real archive answers both bundles; their receipts are journaled
	// and the entries deleted as the sync publisher does.
	a := r.archive()
	deliver := func(res *SealResult) {
		t.Helper()
		rc, err := a.Receive(ctx, "site-a", "dev-1", outboxBytes(t, r.j, res))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatal(err)
		}
		if err := r.core.DeleteOutbox(ctx, res.ID); err != nil {
			t.Fatal(err)
		}
	}
	deliver(res1)
	info := status("a-1")
	if info.Status != StatusArchived || info.Delivery == nil || info.Delivery.Outbox != res1.ID || info.Delivery.LogIndex != 0 {
		t.Fatalf("after the receipt: %+v", info)
	}
	if st := usage(); !st.OutboxOverQuota || logs.count(underLine) != 0 {
		t.Fatalf("one bundle left, still over quota: %+v", st)
	}
	r.core.MarkSent(res1.ID) // a late PUBACK changes nothing
	raw2 := outboxBytes(t, r.j, res2)
	deliver(res2)
	if st := usage(); st.OutboxOverQuota || st.Outbox != 0 || st.OutboxBytes != 0 || logs.count(underLine) != 1 || logs.count(overLine) != 1 {
		t.Fatalf("drained: %+v, %d/%d lines", st, logs.count(overLine), logs.count(underLine))
	}
	// The same receipt again journals nothing.
	size := r.j.Size()
	rc, err := a.Receive(ctx, "site-a", "dev-1", raw2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.core.JournalReceipt(ctx, res2.ID, rc); err != nil || r.j.Size() != size {
		t.Fatalf("receipt again: %v, journal %d -> %d", err, size, r.j.Size())
	}
	r.core.sentMu.Lock()
	left := len(r.core.sent)
	r.core.sentMu.Unlock()
	if left != 0 {
		t.Fatalf("%d sent marks left after delivery", left)
	}

	// A third bundle, sent: after a restart archived is still known, sent
	// is not.
	ingest("c-0")
	res3, _ := r.seal()
	r.core.MarkSent(res3.ID)
	if got := status("c-0").Status; got != StatusSent || logs.count(overLine) != 2 {
		t.Fatalf("third bundle: %s, %d over-quota lines", got, logs.count(overLine))
	}
	r.close()
	r = openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), withQuota)
	r.withPolicy()
	if info := status("b-0"); info.Status != StatusArchived || info.Bundle != res2.ID || info.Delivery.LogIndex != 1 {
		t.Fatalf("after a restart: %+v", info)
	}
	if got := status("c-0").Status; got != StatusSealed {
		t.Fatalf("sent after a restart: %s, want %s", got, StatusSealed)
	}
	if st := usage(); !st.OutboxOverQuota || logs.count(overLine) != 3 {
		t.Fatalf("over quota again after the restart: %+v, %d lines", st, logs.count(overLine))
	}
}

// TestOutboxGetDigest: the publisher gets each bundle with the digest
// taken at seal time, or computed from the bytes for a bundle this process
// did not seal; a delivered bundle is gone.
func TestOutboxGetDigest(t *testing.T) {
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	ctx := context.Background()
	r.export(3, "d")
	res, _ := r.seal()
	r.export(2, "e")
	res2, _ := r.seal()
	var buf []byte
	check := func(what string) {
		t.Helper()
		data, d, ok, err := r.core.OutboxGetDigest(ctx, res.ID, nil)
		if err != nil || !ok || d != res.Digest || sha256.Sum256(data) != d {
			t.Fatalf("%s: digest %x ok %v err %v, want %x of the bytes", what, d[:4], ok, err, res.Digest[:4])
		}
		// Read into one buffer, kept between reads, as the publisher does.
		for _, want := range []*SealResult{res, res2, res} {
			data, d, ok, err := r.core.OutboxGetDigest(ctx, want.ID, &buf)
			if err != nil || !ok || sha256.Sum256(data) != want.Digest || d != want.Digest {
				t.Fatalf("%s: %s read into a kept buffer: ok %v err %v, bytes or digest wrong", what, want.ID, ok, err)
			}
		}
		if cap(buf) == 0 {
			t.Fatalf("%s: the buffer was not kept", what)
		}
	}
	check("sealed here")
	r.core.sentMu.Lock()
	delete(r.core.digests, res.ID) // as after a restart
	r.core.sentMu.Unlock()
	check("sealed before a restart")
	if err := r.core.DeleteOutbox(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := r.core.OutboxGetDigest(ctx, res.ID, &buf); ok || err != nil {
		t.Fatalf("delivered bundle: ok %v err %v", ok, err)
	}
}

// archive opens a real archive with the rig's device enrolled and
// approved (closed at the end of the test).
func (r *rig) archive() *archive.Archive {
	t := r.t
	t.Helper()
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, archive.Options{Dir: t.TempDir(), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	raw, err := r.trust().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Approve(ctx, "site-a/dev-1", "", "test"); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestJournalReceiptsBatch: receipts that came together are journaled in
// one commit, each with the archive.checkpoint record of the archive
// checkpoint it brought, and their entries deleted with one call; the
// same batch again journals nothing, and a batch holding a receipt that does not parse
// journals none of them.
func TestJournalReceiptsBatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	r.withPolicy()
	a := r.archive()
	var ids []string
	var receipts [][]byte
	for i := range 3 {
		if _, err := r.core.Ingest(ctx, n8n, "api", invoice(fmt.Sprintf("r-%d", i))); err != nil {
			t.Fatal(err)
		}
		res, _ := r.seal()
		rc, err := a.Receive(ctx, "site-a", "dev-1", outboxBytes(t, r.j, res))
		if err != nil {
			t.Fatal(err)
		}
		ids, receipts = append(ids, res.ID), append(receipts, rc)
	}
	size := r.j.Size()
	bad := [][]byte{receipts[0], []byte("not a receipt"), receipts[2]}
	if err := r.core.JournalReceipts(ctx, ids, bad); err == nil || r.j.Size() != size {
		t.Fatalf("batch with a bad receipt: %v, journal %d -> %d", err, size, r.j.Size())
	}
	if err := r.core.JournalReceipts(ctx, ids, receipts); err != nil {
		t.Fatal(err)
	}
	if r.j.Size() != size+6 {
		t.Fatalf("journal %d -> %d, want 3 receipt and 3 archive.checkpoint records", size, r.j.Size())
	}
	if err := r.core.JournalReceipts(ctx, ids, receipts); err != nil || r.j.Size() != size+6 {
		t.Fatalf("same batch again: %v, journal %d", err, r.j.Size())
	}
	if err := r.core.DeleteOutboxes(ctx, ids); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		d, err := r.core.delivery(id)
		if err != nil || d == nil || d.Outbox != id || d.Receipt != wire.FormatHash(sha256.Sum256(receipts[i])) {
			t.Fatalf("delivery record of %s: %+v, %v", id, d, err)
		}
		if _, ok, err := r.j.OutboxGet(ctx, id); ok || err != nil {
			t.Fatalf("outbox entry %s still there (%v)", id, err)
		}
	}
}
