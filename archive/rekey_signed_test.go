package archive_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestRekeySigned: with operator keys configured, a rekey is an operator
// statement like a hold or a purge: unsigned or signed by a stranger it is
// refused; signed by an operator, the logged rekey statement carries the
// operator signature, which its parser checks.
func TestRekeySigned(t *testing.T) {
	ctx := t.Context()
	e, _ := retentionEnv(t, map[string]time.Duration{"7y": time.Hour}, "7y")
	old, fresh := newChain(t, 1, bundletest.Options{}), newChain(t, 1, bundletest.Options{})
	e.approve(old)
	e.accept(old, old.Bundles[0])
	e.enroll(fresh)
	name, key := old.DeviceName(), fresh.Trust.KeyID
	if _, err := e.a.Rekey(ctx, name, key, "alice", ""); !isOperatorErr(err) {
		t.Fatalf("unsigned rekey with operator keys configured: %v", err)
	}
	stranger := ed25519.NewKeyFromSeed(make([]byte, 32))
	if _, err := e.a.RekeySigned(ctx, name, key, "mallory", "", stranger); !isOperatorErr(err) {
		t.Fatalf("rekey signed by a stranger: %v", err)
	}
	res, err := e.a.RekeySigned(ctx, name, key, "alice", "board replaced", operatorKey)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.a.LogRecord(res.LogIndex)
	if err != nil {
		t.Fatal(err)
	}
	st, err := archive.ParseEpochStatement(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Signed() || st.Key != archive.KeyID(operatorKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("logged rekey statement not signed by the operator: %s", rec)
	}
	bad := strings.Replace(string(rec), `"reason":"board replaced"`, `"reason":"board replacex"`, 1)
	if _, err := archive.ParseEpochStatement([]byte(bad)); err == nil {
		t.Fatal("a rekey statement whose signed text changed parses")
	}
	// Read back at Open (the registry follows the log).
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	a := reopenRetention(t, e, &testClock{t: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)})
	if list, err := a.Devices().List(); err != nil || len(list) != 1 || list[0].CurrentEpoch() != 2 {
		t.Fatalf("registry after reopen: %+v %v", list, err)
	}
}

func isOperatorErr(err error) bool {
	var oe *archive.OperatorError
	return errors.As(err, &oe)
}
