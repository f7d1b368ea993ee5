package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/agent/policy/signed/signedtest"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

const testPolicy = `version: 1
workflows:
  - name: w
    classifications: [internal]
    retention: r
    destinations: [archive]
    principals: [exp]
    max_size: %d
`

func writePolicy(t *testing.T, dir string, maxSize string) string {
	t.Helper()
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(testPolicy, "%d", maxSize, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignedPolicyInForce: the start and each reload journal a
// policy.change with the signed document, exports name the digest in
// force, and a reload below the threshold or unsigned is refused with an
// alarm while the policy in force stays.
func TestSignedPolicyInForce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 2, "alice", "bob")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	signedPath := filepath.Join(dir, "policy.signed.json")
	write := func(b []byte) {
		if err := os.WriteFile(signedPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(signedtest.Sign(t, writePolicy(t, polDir, "100"), keys...))

	a := startSigned(t, dir, signedPath, adminsPath)
	src, r, cfg, pol := a.src, a.r, a.cfg, a.r.core.Policy()
	exp := &cfg.Principals[0]
	ingest := func(id string) string {
		t.Helper()
		rc, err := r.core.Ingest(ctx, exp, "api", IngestRequest{ID: id, Workflow: "w", App: "a", Classification: "internal", Destination: "archive", MediaType: "text/plain", Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := r.j.Record(rc.Seq)
		rec, _ := custody.ParseRecord(raw)
		b, _ := rec.ExportBody()
		return b.Policy
	}
	if got := ingest("e1"); got != pol.Digest() {
		t.Fatalf("export names %s, policy in force %s", got, pol.Digest())
	}

	// A second version, 2 of 2: in force.
	write(signedtest.Sign(t, writePolicy(t, polDir, "200"), keys...))
	res, err := src.Reload(ctx, r.core, "sighup", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Policy == pol.Digest() || ingest("e2") != res.Policy {
		t.Fatalf("reload did not put the new policy in force: %+v", res)
	}
	v2 := res.Policy

	// Below the threshold and unsigned: refused, v2 stays, alarm raised.
	write(signedtest.Sign(t, writePolicy(t, polDir, "300"), keys[0]))
	var te *signed.ThresholdError
	if _, err := src.Reload(ctx, r.core, "api", "op"); !errors.As(err, &te) {
		t.Fatalf("1 of 2: %v", err)
	}
	os.WriteFile(signedPath, []byte(strings.Replace(testPolicy, "%d", "300", 1)), 0o644)
	if _, err := src.Reload(ctx, r.core, "api", "op"); !errors.Is(err, signed.ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	if ingest("e3") != v2 {
		t.Fatal("a refused reload changed the policy in force")
	}
	st, err := r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Policy != v2 || st.PolicySigned == nil || st.PolicySigned.Refused == nil || st.PolicySigned.RefusedTotal != 2 ||
		strings.Join(st.PolicySigned.Signers, ",") != "alice,bob" {
		t.Fatalf("status %+v %+v", st.Policy, st.PolicySigned)
	}
	if r.core.PolicyRefusals() != 2 {
		t.Fatalf("refusals %d", r.core.PolicyRefusals())
	}

	// The journal holds both versions, whole, verifiable from the record.
	var changes []string
	for seq := range r.j.Size() {
		raw, _ := r.j.Record(seq)
		rec, _ := custody.ParseRecord(raw)
		if rec.Type != custody.TypePolicyChange {
			continue
		}
		c, s, err := signed.ParseChangeBody(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c.Reason+":"+s.Policy.Digest())
	}
	if strings.Join(changes, ",") != "start:"+pol.Digest()+",reload:"+v2 {
		t.Fatalf("policy.change records %v", changes)
	}
}

func TestPolicyDutiesInConfig(t *testing.T) {
	dir := t.TempDir()
	_, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	cfg := &config.Config{Policy: "x", PolicyAdmins: adminsPath, TPM: "simulator:x",
		Principals: config.Principals{{Name: "alice", Roles: []config.Role{config.RoleExporter}}}}
	if _, err := OpenPolicySource(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), `"alice"`) {
		t.Fatalf("admin as exporter: %v", err)
	}
	cfg.PolicyAdmins, cfg.TPM = "", "device:/dev/tpmrm0"
	var ue *UnsignedPolicyError
	if _, err := OpenPolicySource(cfg, slog.New(slog.DiscardHandler)); !errors.As(err, &ue) {
		t.Fatalf("unsigned policy on a hardware TPM: %v", err)
	}
}

// Once a journal ran on a signed policy, a config without policy_admins
// is refused; an admin set is new to the journal once.
func TestPolicyDowngradeAndNewAdmins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	bare := writePolicy(t, polDir, "100")
	signedPath := filepath.Join(dir, "policy.signed.json")
	if err := os.WriteFile(signedPath, signedtest.Sign(t, bare, keys...), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a, sp := openSigned(t, dir, signedPath, adminsPath)
	src, r := a.src, a.r
	unsigned := &PolicySource{Path: bare}
	if err := unsigned.Start(ctx, r.core, nil, log); err != nil {
		t.Fatalf("a journal that never ran signed: %v", err)
	}
	fresh := func() bool {
		t.Helper()
		_, f, err := r.core.InstallPolicy(ctx, sp, src.Admins, signed.ReasonStart, custody.Actor{Kind: "agent", ID: "policy"})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if !fresh() || fresh() {
		t.Fatal("the first admin set: new once")
	}
	var de *PolicyDowngradeError
	if err := unsigned.Start(ctx, r.core, nil, log); !errors.As(err, &de) {
		t.Fatalf("unsigned after signed: %v", err)
	}
	// Another admin set signing the same policy: new once.
	keys2, admins2Path := signedtest.Admins(t, t.TempDir(), 1, "carol")
	a2, err := signed.ReadAdmins(admins2Path)
	if err != nil {
		t.Fatal(err)
	}
	sp2, err := signed.Verify(signedtest.Sign(t, bare, keys2...), a2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if _, f, err := r.core.InstallPolicy(ctx, sp2, a2, signed.ReasonReload, custody.Actor{Kind: "agent", ID: "policy"}); err != nil || f != want {
			t.Fatalf("second set, install %d: new %v, want %v (%v)", i, f, want, err)
		}
	}
	if fresh() {
		t.Fatal("back to the first set: not new")
	}
}

// Exports journaled while policies are reloaded each name the policy of
// the last policy.change before them (the verifier's policy.inforce).
func TestPolicyReloadUnderLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, adminsPath := signedtest.Admins(t, dir, 1, "alice")
	polDir := filepath.Join(dir, "pol")
	os.Mkdir(polDir, 0o755)
	envs := map[bool][]byte{
		false: signedtest.Sign(t, writePolicy(t, polDir, "100"), keys...),
		true:  signedtest.Sign(t, writePolicy(t, polDir, "200"), keys...),
	}
	signedPath := filepath.Join(dir, "policy.signed.json")
	os.WriteFile(signedPath, envs[false], 0o644)
	a := startSigned(t, dir, signedPath, adminsPath)
	src, r, cfg := a.src, a.r, a.cfg
	done := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				_, err := r.core.Ingest(ctx, &cfg.Principals[0], "api", IngestRequest{ID: fmt.Sprintf("w%d-%d", w, i), Workflow: "w", App: "a",
					Classification: "internal", Destination: "archive", MediaType: "text/plain", Data: []byte("x")})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 20 {
		os.WriteFile(signedPath, envs[i%2 == 0], 0o644)
		if _, err := src.Reload(ctx, r.core, "api", "op"); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cur, exports := "", 0
	for seq := range r.j.Size() {
		raw, _ := r.j.Record(seq)
		rec, _ := custody.ParseRecord(raw)
		switch rec.Type {
		case custody.TypePolicyChange:
			c, _, err := signed.ParseChangeBody(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			cur = c.Policy
		case custody.TypeExport:
			b, _ := rec.ExportBody()
			if b.Policy != cur {
				t.Fatalf("export at seq %d names %s, the policy.change before it %s", seq, b.Policy, cur)
			}
			exports++
		}
	}
	if exports == 0 {
		t.Fatal("no exports")
	}
}
