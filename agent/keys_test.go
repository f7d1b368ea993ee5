package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// outboxChain verifies every outbox bundle in order against tr and
// returns the key events and the record types of all of them.
func outboxChain(t *testing.T, j *store.Journal, tr *trustfile.Trust) ([]verify.KeyEvent, []*custody.Record, *verify.State) {
	t.Helper()
	var ids []string
	if err := j.OutboxIDs(context.Background(), func(id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	var prev *verify.State
	var events []verify.KeyEvent
	var recs []*custody.Record
	for _, id := range ids {
		raw, ok, err := j.OutboxGet(context.Background(), id)
		if err != nil || !ok {
			t.Fatalf("outbox %s: %v", id, err)
		}
		b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		rep := verify.Verify(b, tr, prev)
		if !rep.OK() {
			t.Fatalf("bundle %s does not verify:\n%s", id, rep)
		}
		prev = rep.State
		events = append(events, rep.Keys...)
		lines, _ := b.Records()
		for _, l := range lines {
			r, err := custody.ParseRecord(l)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	return events, recs, prev
}

// TestRotateKeyThreeTimes rotates the simulator's signing key three times
// between seals; the whole outbox verifies as one chain against the trust
// file of the first key, and each key operation is a record sealed in it.
func TestRotateKeyThreeTimes(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	ctx := context.Background()
	tr := r.trust()
	first := r.tpm.Identity().KeyID
	if k := r.core.Key(); k.KeyID != first || k.Seq != 0 {
		t.Fatalf("key in force %+v, want %s from seq 0 (key.create first)", k, first)
	}
	keys := []string{first}
	r.export(2, "start")
	r.seal()
	for i := range 3 {
		rot, err := r.core.RotateKey(ctx, fmt.Sprintf("test %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if rot.OldKeyID != keys[i] || rot.NewKeyID != r.tpm.Identity().KeyID || r.core.Key().KeyID != rot.NewKeyID {
			t.Fatalf("rotation %d: %+v, TPM %s", i, rot, r.tpm.Identity().KeyID)
		}
		keys = append(keys, rot.NewKeyID)
		r.export(2, fmt.Sprintf("r%d", i))
		r.seal()
	}
	events, recs, last := outboxChain(t, r.j, tr)
	if last.Keys == nil || last.Keys.Current.KeyID != keys[3] || !slices.Equal(last.Keys.Revoked, keys[:3]) {
		t.Fatalf("final key state %+v", last.Keys)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Event+" "+e.KeyID)
	}
	want := []string{"created " + keys[0]}
	for i := range 3 {
		want = append(want, "rotated "+keys[i+1], "revoked "+keys[i])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("key history\n got %q\nwant %q", got, want)
	}
	if recs[0].Type != custody.TypeKeyCreate {
		t.Fatalf("first record is %s, want key.create", recs[0].Type)
	}
	// Restart: the journal knows the key; no new key.create.
	r.close()
	r = openSimRigAt(t, r.dir)
	if k := r.core.Key(); k.KeyID != keys[3] {
		t.Fatalf("after restart the key in force is %s", k.KeyID)
	}
	r.export(1, "after")
	r.seal()
	_, recs, _ = outboxChain(t, r.j, tr)
	n := 0
	for _, rec := range recs {
		if rec.Type == custody.TypeKeyCreate {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d key.create records, want 1", n)
	}
}

// openSimRigAt reopens a rig's data dir.
func openSimRigAt(t *testing.T, dir string, mod ...func(*Options)) *rig {
	return openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), mod...)
}

// TestRotateKeyOldKeyCannotSign: with the PCRs moved the old key cannot
// sign the statement: a typed error, nothing journaled, key unchanged.
func TestRotateKeyOldKeyCannotSign(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	ctx := context.Background()
	old := r.tpm.Identity().KeyID
	size := r.j.Size()
	if err := r.tpm.ExtendPCR(ctx, 7, []byte("new boot loader")); err != nil {
		t.Fatal(err)
	}
	_, err := r.core.RotateKey(ctx, "test")
	var oe *OldKeyError
	var pm *tpm.PCRMismatchError
	if !errors.As(err, &oe) || oe.KeyID != old || !errors.As(err, &pm) {
		t.Fatalf("rotate with moved PCRs: %v", err)
	}
	if r.j.Size() != size || r.tpm.Identity().KeyID != old || r.core.Key().KeyID != old {
		t.Fatal("a failed rotation changed the journal or the key")
	}
	if _, ok, _ := r.tpm.PendingRotation(ctx); ok {
		t.Fatal("candidate left after a failed rotation")
	}
}

// killTPM is the TPM with a "kill" (a panic) at one step of a rotation.
type killTPM struct {
	*tpm.TPM
	at string // "prepared", "before-commit", "committed"
}

type killed struct{}

func (k *killTPM) PrepareRotation(ctx context.Context) (tpm.Identity, error) {
	id, err := k.TPM.PrepareRotation(ctx)
	if k.at == "prepared" {
		panic(killed{})
	}
	return id, err
}

func (k *killTPM) CommitRotation(ctx context.Context, keyID string) (tpm.Identity, error) {
	if k.at == "before-commit" {
		panic(killed{})
	}
	id, err := k.TPM.CommitRotation(ctx, keyID)
	if k.at == "committed" {
		panic(killed{})
	}
	return id, err
}

// TestRotateKeyCrash kills a rotation at each step and restarts: either
// the old key is in force and no key.rotate names the candidate, or the
// new key is in force with its key.rotate (and then key.revoke)
// journaled; in both cases the whole outbox verifies as one chain.
func TestRotateKeyCrash(t *testing.T) {
	for _, at := range []string{"prepared", "before-commit", "committed"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			r := openSimRig(t, dir)
			ctx := context.Background()
			tr := r.trust()
			old := r.tpm.Identity().KeyID
			r.export(2, "a")
			r.seal()
			kt := &killTPM{TPM: r.tpm, at: at}
			r.core.t = kt
			func() {
				defer func() {
					if p := recover(); p == nil {
						t.Fatal("not killed")
					} else if _, ok := p.(killed); !ok {
						panic(p)
					}
				}()
				_, _ = r.core.RotateKey(ctx, "test")
			}()
			r.close()
			r = openSimRigAt(t, dir)
			inForce := r.tpm.Identity().KeyID
			if r.core.Key().KeyID != inForce {
				t.Fatalf("journal has %s in force, TPM %s", r.core.Key().KeyID, inForce)
			}
			if _, ok, _ := r.tpm.PendingRotation(ctx); ok {
				t.Fatal("candidate left after the restart")
			}
			rotated := inForce != old
			if want := at != "prepared"; rotated != want {
				t.Fatalf("after a kill %s: rotated %v, want %v", at, rotated, want)
			}
			r.export(2, "b")
			r.seal()
			events, _, last := outboxChain(t, r.j, tr)
			if last.Keys.Current.KeyID != inForce {
				t.Fatalf("verifier's key in force %s, TPM %s", last.Keys.Current.KeyID, inForce)
			}
			var kinds []string
			for _, e := range events {
				kinds = append(kinds, e.Event)
			}
			want := []string{"created"}
			if rotated {
				want = append(want, "rotated", "revoked")
			}
			if !slices.Equal(kinds, want) {
				t.Fatalf("key events %v, want %v", kinds, want)
			}
		})
	}
}

// TestScheduledRotation: with RotateEvery the sealer rotates once the key
// in force is older than that, by the injected clock, and not before.
func TestScheduledRotation(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	every := 90 * 24 * time.Hour
	r := openSimRigAt(t, t.TempDir(), func(o *Options) { o.Now = clock; o.RotateEvery = every })
	tr := r.trust()
	first := r.tpm.Identity().KeyID
	r.export(1, "a")
	r.seal()
	now = now.Add(every - time.Minute)
	r.export(1, "b")
	r.seal()
	if r.tpm.Identity().KeyID != first {
		t.Fatal("rotated before RotateEvery")
	}
	now = now.Add(2 * time.Minute)
	r.export(1, "c")
	r.seal()
	second := r.tpm.Identity().KeyID
	if second == first || r.core.Key().Since != now {
		t.Fatalf("no rotation after RotateEvery: key %s since %v", second, r.core.Key().Since)
	}
	// The age counts from the rotation: not again the next day.
	now = now.Add(24 * time.Hour)
	r.export(1, "d")
	r.seal()
	if r.tpm.Identity().KeyID != second {
		t.Fatal("rotated again a day after")
	}
	events, recs, _ := outboxChain(t, r.j, tr)
	if len(events) != 3 || events[1].Event != "rotated" || events[1].Reason != "scheduled" {
		t.Fatalf("key events %+v", events)
	}
	for _, rec := range recs {
		if rec.Type == custody.TypeKeyRotate && !rec.Time.Equal(now.Add(-24*time.Hour)) {
			t.Fatalf("key.rotate at %v", rec.Time)
		}
	}
}

var _ KeyRotator = (*tpm.TPM)(nil)
