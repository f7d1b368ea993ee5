package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// TestLocalRetention (real Badger): past the local retention, the
// payloads of exports whose bundle the archive receipted leave the
// journal under one retention.purge record; a payload an unreceipted
// export shares stays, as does a young one; the next bundle carries the
// record and the chain verifies. A purge record journaled before a crash
// is finished by the next pass.
func TestLocalRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), func(o *Options) { o.Now = clock })
	a := r.archive()
	tr := r.trust()
	exp := func(id, data string) [32]byte {
		t.Helper()
		_, err := r.core.Export(ctx, Export{
			Actor:    custody.Actor{Kind: "principal", ID: "tester", Via: "test"},
			ExportID: id, App: "n8n", Workflow: "wf", Purpose: "audit", Schema: "s@1", Classification: "internal",
			Retention: "1y", Destination: "dst", Policy: wire.FormatHash(sha256.Sum256([]byte("policy"))), MediaType: "text/plain",
			Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256([]byte(data))
	}
	deliver := func(prev *verify.State) *verify.State {
		t.Helper()
		res, b := r.seal()
		st := mustVerify(t, b, tr, prev)
		rc, err := a.Receive(ctx, "site-a", "dev-1", outboxBytes(t, r.j, res))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.core.JournalReceipt(ctx, res.ID, rc); err != nil {
			t.Fatal(err)
		}
		return st
	}
	d1 := exp("e1", "one")
	d2 := exp("e2", "two")
	st := deliver(nil)
	exp("e3", "one") // shares e1's bytes, not receipted
	keep := time.Hour
	if res, err := r.core.PurgeLocal(ctx, keep); err != nil || res.Seq != 0 {
		t.Fatalf("before the retention: %+v %v", res, err)
	}
	now.Add(int64(2 * keep))
	d4 := exp("e4", "four") // young
	res, err := r.core.PurgeLocal(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Payloads) != 1 || res.Payloads[0] != wire.FormatHash(d2) || len(res.Exports) != 1 || res.Exports[0] != "e2" || res.Seq == 0 {
		t.Fatalf("purge %+v", res)
	}
	if _, err := r.j.Payload(d2); !errors.Is(err, store.ErrPurged) {
		t.Fatalf("e2 payload: %v", err)
	}
	for _, d := range [][32]byte{d1, d4} {
		if _, err := r.j.Payload(d); err != nil {
			t.Fatalf("kept payload: %v", err)
		}
	}
	raw, _ := r.j.Record(res.Seq)
	rec, err := custody.ParseRecord(raw)
	if err != nil || rec.Type != custody.TypeRetentionPurge {
		t.Fatalf("record %s %v", raw, err)
	}
	// Nothing more to do: the next pass journals nothing.
	if res, err := r.core.PurgeLocal(ctx, keep); err != nil || res.Seq != 0 {
		t.Fatalf("second pass: %+v %v", res, err)
	}
	// The next bundle carries the purge record; the chain verifies.
	st = deliver(st)

	// A crash after the record, before the deletion: journal a purge of
	// e1's bytes (old and receipted now, with e3's) by hand; a fresh pass
	// (cursor 0, as after a start) finishes it and journals nothing new.
	_, err = r.j.Append(ctx, r.core.entry(custody.TypeRetentionPurge, custody.Actor{Kind: "agent", ID: "retention", Via: "local"},
		custody.PurgeBody{Payloads: []string{wire.FormatHash(d1)}, Reason: LocalRetentionReason(keep)}))
	if err != nil {
		t.Fatal(err)
	}
	r.core.ret.cursor = 0
	res, err = r.core.PurgeLocal(ctx, keep)
	if err != nil || res.Resumed != 1 || res.Seq != 0 {
		t.Fatalf("resumed purge: %+v %v", res, err)
	}
	if _, err := r.j.Payload(d1); !errors.Is(err, store.ErrPurged) {
		t.Fatalf("e1 payload after the resumed purge: %v", err)
	}
	if _, err := r.j.Payload(d4); err != nil {
		t.Fatalf("young e4 payload: %v", err)
	}
	deliver(st)
}
