package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// setTPM points the agent's config at spec.
func (a *agentDir) setTPM(t *testing.T, spec string) {
	t.Helper()
	p := filepath.Join(a.dir, "agent.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^tpm: .*$`).ReplaceAll(b, []byte("tpm: "+spec))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// postExport posts one invoice export and returns what the API answered.
func postExport(t *testing.T, c *api.Client, id string, n int) agent.ExportReceipt {
	t.Helper()
	body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`,
		id, fmt.Sprintf(e2eInvoice, n))
	r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("export %s: %d %s %v", id, r.status, r.body, err)
	}
	var rc agent.ExportReceipt
	if err := json.Unmarshal(r.body, &rc); err != nil || rc.ExportID != id {
		t.Fatalf("export %s: answer %s: %v", id, r.body, err)
	}
	return rc
}

func sealNow(t *testing.T, c *api.Client) {
	t.Helper()
	r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil)
	if err != nil || r.status/100 != 2 {
		t.Fatalf("seal: %d %s %v", r.status, r.body, err)
	}
}

// refusesToStart starts the agent and wants it to exit non-zero with
// stderr holding every one of want.
func (a *agentDir) refusesToStart(t *testing.T, want ...string) string {
	t.Helper()
	p := a.start(t, false)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("agent did not stop\n%s", p.stderr)
	}
	out := p.stderr.String()
	if p.waitErr == nil {
		t.Fatalf("agent started\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("agent's refusal does not say %q:\n%s", w, out)
		}
	}
	return out
}

// swtpmJournal opens the stopped agent's journal with the data key the
// swtpm at spec unseals (under the stored PCR authorization, for keys
// bound to a PCR-policy key).
func (a *agentDir) swtpmJournal(t *testing.T, spec string) *store.Journal {
	t.Helper()
	ctx := context.Background()
	state := filepath.Join(a.dir, "data", "tpm")
	tp, err := tpm.Open(ctx, spec, tpm.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if tp.Identity().PCRPolicyKey != nil {
		if _, err := agent.LoadPCRAuthorization(ctx, state, "e2e-site/dev-1", tp); err != nil {
			tp.Close()
			t.Fatal(err)
		}
	}
	key, err := tp.DataKey(ctx)
	tp.Close()
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(a.dir, "data", "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// swtpmAgent is an agent, not enrolled yet, on a new swtpm; cfg is its
// config file.
func swtpmAgent(t *testing.T) (sw *swtpmtest.Instance, a *agentDir, cfg string) {
	t.Helper()
	swtpmtest.Need(t, "swtpm")
	sw = swtpmtest.Start(t)
	a = newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB", notEnrolled: true})
	a.setTPM(t, sw.Spec)
	return sw, a, filepath.Join(a.dir, "agent.yaml")
}

// outboxIDs are the bundles in the stopped agent's outbox.
func (a *agentDir) outboxIDs(t *testing.T, spec string) []string {
	t.Helper()
	var ids []string
	j := a.swtpmJournal(t, spec)
	if err := j.OutboxIDs(context.Background(), func(id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	j.Close()
	return ids
}

// wipeTPM wipes the agent's TPM (swtpm's state gone, a fresh one started)
// and checks the agent refuses to start, naming recover and rekey.
func (a *agentDir) wipeTPM(t *testing.T, sw *swtpmtest.Instance) *swtpmtest.Instance {
	t.Helper()
	sw.Stop()
	if err := os.RemoveAll(sw.StateDir); err != nil {
		t.Fatal(err)
	}
	sw2 := swtpmtest.Start(t)
	a.setTPM(t, sw2.Spec)
	a.refusesToStart(t, "cleared or replaced", "edgeseal tpm recover --config", "--recovery-key",
		"edgeseal archive devices rekey SITE/DEVICE --key NEWKEY")
	return sw2
}

// newPCRKey writes an operator's PCR-policy key (`tpm pcr-key new`).
func newPCRKey(t *testing.T) string {
	t.Helper()
	pcrKey := filepath.Join(t.TempDir(), "pcr-key")
	if out, code := bundlesCLI(t, "tpm", "pcr-key", "new", "--out", pcrKey); code != 0 {
		t.Fatalf("pcr-key new: exit %d\n%s", code, out)
	}
	return pcrKey
}

// enrollSwtpm runs `tpm recovery-keygen` and `tpm enroll` against swtpm,
// binding the keys as binding says (`--pcr-policy=pcr` or
// `--pcr-policy-key FILE.pub`), and returns the recovery key file, the
// trust file and what enroll printed.
func enrollSwtpm(t *testing.T, a *agentDir, spec string, binding ...string) (rk, trust, out string) {
	t.Helper()
	keys := t.TempDir()
	rk = filepath.Join(keys, "recovery.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk); code != 0 || !strings.Contains(out, "recovery key id sha256:") {
		t.Fatalf("recovery-keygen: exit %d\n%s", code, out)
	}
	if fi, err := os.Stat(rk); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private recovery key: %v %v", fi, err)
	}
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk); code != 1 || !strings.Contains(out, "not overwriting") {
		t.Fatalf("recovery-keygen over an existing key: exit %d\n%s", code, out)
	}
	state := filepath.Join(a.dir, "data", "tpm")
	trust = filepath.Join(keys, "DEVICE-1.json")
	enroll := []string{"tpm", "enroll", "--insecure-simulator", "--tpm", spec, "--state", state, "--site", "e2e-site", "--device", "dev-1", "--out", trust}
	enroll = append(enroll, binding...)
	// A real TPM is not enrolled without a recovery key.
	if out, code := bundlesCLI(t, enroll...); code != 2 || !strings.Contains(out, "--recovery-key FILE.pub is required") {
		t.Fatalf("enroll of a real TPM without a recovery key: exit %d\n%s", code, out)
	}
	if has, _ := tpm.HasKeys(state); has {
		t.Fatal("a refused enrollment made keys")
	}
	out, code := bundlesCLI(t, append(enroll, "--recovery-key", rk+".pub")...)
	if code != 0 || !strings.Contains(out, "data key wrapped to recovery key") {
		t.Fatalf("enroll: exit %d\n%s", code, out)
	}
	return rk, trust, out
}

// TestRecoverAfterTPMClear: a device on swtpm enrolled with a recovery
// key seals, delivers (air gap) and seals more; its TPM is then wiped (a
// TPM clear or a board swap). The agent refuses to start and says what to
// do; `tpm recover` with the recovery key brings the journal back, new
// keys and a new trust file; the agent starts, journals key.recover and
// seals the whole journal again from record 0 under the new key. The new
// bundles verify with the new trust file and hold every export the API
// acknowledged, record by record.
func TestRecoverAfterTPMClear(t *testing.T) {
	needAgent(t)
	sw, a, cfg := swtpmAgent(t)
	rk, trust1, _ := enrollSwtpm(t, a, sw.Spec, "--pcr-policy=pcr")

	acked := map[string]agent.ExportReceipt{}
	n := 0
	post := func(c *api.Client, k int) {
		for range k {
			id := fmt.Sprintf("inv-%03d", n)
			acked[id] = postExport(t, c, id, n)
			n++
		}
	}
	p := a.start(t, true)
	c := unixClient(a.socket)
	post(c, 3)
	sealNow(t, c)
	post(c, 3)
	sealNow(t, c)
	p.stop()

	// Deliver those two bundles over the air gap.
	media, adata := t.TempDir(), t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media); code != 0 || !strings.Contains(out, "2 bundle(s)") {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", trust1, "--data-dir", adata); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyIDOf(t, trust1), "--no-activation", "--data-dir", adata); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "import", media, "--data-dir", adata); code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
		t.Fatalf("archive import: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", filepath.Join(adata, "archive.key.pub"), media); code != 0 ||
		!strings.Contains(out, "2 delivered") {
		t.Fatalf("import-receipts: exit %d\n%s", code, out)
	}

	// More exports: one bundle sealed and never delivered, and the last
	// ones sealed by the agent's stop.
	p = a.start(t, true)
	post(c, 2)
	sealNow(t, c)
	post(c, 2)
	p.stop()
	undelivered := a.outboxIDs(t, sw.Spec)
	if len(undelivered) != 2 {
		t.Fatalf("outbox before the wipe: %v, want 2 undelivered bundles", undelivered)
	}

	// The TPM is wiped: swtpm's state is gone, a fresh one starts.
	a.wipeTPM(t, sw)

	if out, code := doctorCLI(t, cfg, nil); code != 1 || !strings.Contains(out, "cleared or replaced") || !strings.Contains(out, "edgeseal tpm recover --config") {
		t.Fatalf("doctor on the wiped TPM: exit %d\n%s", code, out)
	}

	// The wrong recovery key is refused and changes nothing.
	other := filepath.Join(t.TempDir(), "other.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", other); code != 0 {
		t.Fatalf("recovery-keygen: exit %d\n%s", code, out)
	}
	trust2 := filepath.Join(t.TempDir(), "DEVICE-2.json")
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", other, "--out", trust2); code != 1 || !strings.Contains(out, "the wrap is for recovery key") {
		t.Fatalf("recover with another recovery key: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(trust2); err == nil {
		t.Fatal("a refused recovery wrote a trust file")
	}

	out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", trust2)
	if code != 0 {
		t.Fatalf("tpm recover: exit %d\n%s", code, out)
	}
	t.Logf("tpm recover:\n%s", out)
	tr2 := readTrust(t, trust2)
	raw1, _ := os.ReadFile(trust1)
	tr1, _ := trustfile.ParseTrust(raw1)
	if tr2.KeyID == tr1.KeyID {
		t.Fatal("recovery kept the lost key")
	}
	for _, w := range []string{"new sealing epoch 2", "edgeseal archive devices rekey e2e-site/dev-1 --key " + tr2.KeyID, "2 undelivered bundles"} {
		if !strings.Contains(out, w) {
			t.Fatalf("tpm recover does not say %q", w)
		}
	}
	// The old epoch's bundles are all kept, delivered (exported to media
	// before) and retired, and still verify as one chain with the old
	// trust file.
	oldChain, _ := filepath.Glob(filepath.Join(media, "*.bundle.tar"))
	sort.Strings(oldChain)
	for _, id := range undelivered {
		p := filepath.Join(a.dir, "data", "epoch-1-outbox", id+".bundle")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("undelivered bundle %s of the old epoch: %v", id, err)
		}
		oldChain = append(oldChain, p)
	}
	if out, code := bundlesCLI(t, append(append([]string{"verify"}, oldChain...), "--trust", trust1)...); code != 0 || strings.Count(out, "  VERIFIED") != 4 {
		t.Fatalf("verify of the old epoch with the old trust file: exit %d\n%s", code, out)
	}

	// Running it again finds nothing to do and journals nothing.
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", filepath.Join(t.TempDir(), "again.json")); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("second tpm recover: exit %d\n%s", code, out)
	}

	// The agent starts, and seals everything again under the new key.
	p = a.start(t, true)
	post(c, 1)
	sealNow(t, c)
	p.stop()
	media2 := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media2); code != 0 {
		t.Fatalf("bundles export of the new epoch: exit %d\n%s", code, out)
	}
	files, err := filepath.Glob(filepath.Join(media2, "*.bundle.tar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("new epoch bundles: %v %v", files, err)
	}
	sort.Strings(files)
	if out, code := bundlesCLI(t, append(append([]string{"verify"}, files...), "--trust", trust2)...); code != 0 {
		t.Fatalf("verify of the new epoch with the new trust file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "verify", files[0], "--trust", trust1); code == 0 {
		t.Fatalf("the new epoch's bundle verifies with the lost key's trust file:\n%s", out)
	}
	records := map[uint64][]byte{}
	recovers := 0
	for i, f := range files {
		fb, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Read(bytes.NewReader(fb), bundle.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		_, st, err := b.Statement()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && st.Predicate.PreviousCheckpoint != "" {
			t.Fatalf("the new epoch's first bundle has a previous checkpoint %q", st.Predicate.PreviousCheckpoint)
		}
		recs, parsed := bundleRecords(t, b)
		for i, rec := range recs {
			r := parsed[i]
			records[r.Seq] = rec
			if r.Type == custody.TypeKeyRecover {
				recovers++
				var kb agent.KeyRecoverBody
				if err := json.Unmarshal(r.Body, &kb); err != nil || kb.Case != agent.RecoverNewTPM || kb.KeyID != tr2.KeyID ||
					kb.PreviousKeyID != tr1.KeyID || kb.Epoch != 2 || kb.Device != "e2e-site/dev-1" || kb.RetiredBundles != 2 {
					t.Fatalf("key.recover body %s: %v", r.Body, err)
				}
			}
		}
	}
	if _, ok := records[0]; !ok {
		t.Fatal("the new epoch does not start at record 0")
	}
	if recovers != 1 {
		t.Fatalf("%d key.recover records sealed, want 1", recovers)
	}
	for id, rc := range acked {
		rec, ok := records[rc.Seq]
		if !ok {
			t.Fatalf("export %s (seq %d) is not in the new epoch's bundles", id, rc.Seq)
		}
		if wire.FormatHash(merkle.LeafHash(rec)) != rc.Leaf {
			t.Fatalf("export %s: record %d is not the one the API acknowledged", id, rc.Seq)
		}
	}
	t.Logf("%d acknowledged exports re-sealed under %s in %d bundles", len(acked), tr2.KeyID, len(files))
}

// TestRecoverPCRMoved: the same TPM whose PCR 0 moved (a firmware
// update): the agent refuses to start and says so; `tpm recover` seals the
// data key again to the PCRs as they are now; the agent starts with the
// journal intact and a key.recover record of the reseal.
func TestRecoverPCRMoved(t *testing.T) {
	needAgent(t)
	sw, a, cfg := swtpmAgent(t)
	rk, _, _ := enrollSwtpm(t, a, sw.Spec, "--pcr-policy=pcr")
	p := a.start(t, true)
	c := unixClient(a.socket)
	rcs := []agent.ExportReceipt{postExport(t, c, "inv-a", 1), postExport(t, c, "inv-b", 2)}
	sealNow(t, c)
	p.stop()
	j := a.swtpmJournal(t, sw.Spec)
	before := j.Size()
	j.Close()

	ctx := context.Background()
	tp, err := tpm.Open(ctx, sw.Spec, tpm.Options{StateDir: filepath.Join(a.dir, "data", "tpm")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ExtendPCR(ctx, 0, []byte("firmware update")); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	a.refusesToStart(t, "PCRs changed", "edgeseal tpm recover --config")

	// A tampered wrap is refused and changes nothing.
	wrapFile := filepath.Join(a.dir, "data", "tpm", "data-key.recovery.json")
	raw, err := os.ReadFile(wrapFile)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`"ciphertext": "`))
	if i < 0 {
		t.Fatalf("no ciphertext in %s", raw)
	}
	i += len(`"ciphertext": "`)
	tampered := bytes.Clone(raw)
	if tampered[i] == 'A' { // another base64 digit: another first byte
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	tamperedFile := filepath.Join(t.TempDir(), "tampered.json")
	if err := os.WriteFile(tamperedFile, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--wrap", tamperedFile); code != 1 || !strings.Contains(out, "does not decrypt") {
		t.Fatalf("recover with a tampered wrap: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "data", "tpm", "data-key.json.old")); err == nil {
		t.Fatal("a refused recovery resealed the data key")
	}

	out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", filepath.Join(t.TempDir(), "unused.json"))
	if code != 0 || !strings.Contains(out, "the TPM is the same, PCR [0] moved") || !strings.Contains(out, "data key resealed") {
		t.Fatalf("tpm recover: exit %d\n%s", code, out)
	}
	t.Logf("tpm recover:\n%s", out)
	if _, err := os.Stat(filepath.Join(a.dir, "data", "tpm", "data-key.json.old")); err != nil {
		t.Fatalf("old data key blob: %v", err)
	}
	// Again: nothing left to do.
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("second tpm recover: exit %d\n%s", code, out)
	}

	p = a.start(t, true)
	// While the agent runs, recover refuses (the journal's lock).
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk); code != 1 || !strings.Contains(out, "stop the agent first") {
		t.Fatalf("recover beside a running agent: exit %d\n%s", code, out)
	}
	for _, rc := range rcs {
		info := exportState(t, c, rc.ExportID)
		if info.Seq != rc.Seq || info.Leaf != rc.Leaf {
			t.Fatalf("export %s after the reseal: %+v, acknowledged %+v", rc.ExportID, info, rc)
		}
	}
	p.stop()
	j = a.swtpmJournal(t, sw.Spec)
	recovers := 0
	err = j.Records(ctx, before, j.Size(), func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err == nil && r.Type == custody.TypeKeyRecover {
			recovers++
			var kb agent.KeyRecoverBody
			if err := json.Unmarshal(r.Body, &kb); err != nil || kb.Case != agent.RecoverReseal || kb.KeyID != kb.PreviousKeyID || kb.Epoch != 1 {
				t.Errorf("key.recover body %s: %v", r.Body, err)
			}
		}
		return err
	})
	if err != nil || recovers != 1 {
		t.Fatalf("%d key.recover records after the reseal, %v", recovers, err)
	}
	j.Close()

	// The recovery key is retired: rewrap to a new one while the data key
	// unseals; the old key no longer opens the wrap, the new one does.
	rk2 := filepath.Join(t.TempDir(), "recovery-2.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk2); code != 0 {
		t.Fatalf("recovery-keygen: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "tpm", "rewrap", "--config", cfg, "--recovery-key", rk2+".pub"); code != 0 || !strings.Contains(out, "wrapped to recovery key") {
		t.Fatalf("tpm rewrap: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(wrapFile + ".old"); err != nil {
		t.Fatalf("previous wrap: %v", err)
	}
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk); code != 1 || !strings.Contains(out, "the wrap is for recovery key") {
		t.Fatalf("recover with the retired key: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk2); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("recover with the new key: exit %d\n%s", code, out)
	}
}

// TestAgentNotEnrolled: an agent (and `agent enroll`) pointed at a TPM
// state dir without keys (never enrolled, or a typo in tpm_state_dir)
// refuses with what is wrong, and creates nothing.
func TestAgentNotEnrolled(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"}) // enrolled in data/tpm
	cfg := filepath.Join(a.dir, "agent.yaml")
	a.start(t, true).stop() // a journal exists
	typo := filepath.Join(a.dir, "data", "tmp")
	appendFile(t, cfg, fmt.Sprintf("tpm_state_dir: %s\n", typo))
	want := "no TPM keys in " + typo + ": this device is not enrolled, or the path is wrong"
	a.refusesToStart(t, want)
	if out, code := bundlesCLI(t, "agent", "enroll", "--config", cfg, "--out", filepath.Join(t.TempDir(), "req.json")); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("agent enroll on a typo: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", t.TempDir()); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("bundles export on a typo: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(typo); err == nil {
		t.Fatal("the mistyped state dir was created")
	}
}
