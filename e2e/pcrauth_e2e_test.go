package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// exportIDs names one client's exports prefix-000000, prefix-000001, ...
func exportIDs(prefix string) func(c, n int) string {
	return func(_, n int) string { return fmt.Sprintf("%s-%06d", prefix, n) }
}

// pcrExportPause paces the firmware test's exports.
func pcrExportPause() time.Duration { return 20 * time.Millisecond }

// waitStatus polls /v1/status until ok(status) or the deadline.
func waitStatus(t *testing.T, a *agentDir, ag *agentProc, what string, ok func(*agent.Status) bool) *agent.Status {
	t.Helper()
	sock := unixClient(a.socket)
	deadline := time.Now().Add(120 * time.Second)
	for {
		var st agent.Status
		rep, err := do(t, sock, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && ok(&st) {
			return &st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after 120s: %d %s %v\n%s", what, rep.status, rep.body, err, tail(ag.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pcrread reads SHA-256 PCRs 0,2,4,7 with tpm2_pcrread over TCTI swtpm:,
// as an operator on the device would, in the --pcrs form.
func pcrread(t *testing.T, tcti string) string {
	t.Helper()
	tool := swtpmtest.Need(t, "tpm2_pcrread")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "-T", tcti, "sha256:0,2,4,7").CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_pcrread: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`(?m)^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$`)
	var parts []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		parts = append(parts, m[1]+"="+strings.ToLower(m[2]))
	}
	if len(parts) != 4 {
		t.Fatalf("tpm2_pcrread output not understood:\n%s", out)
	}
	return strings.Join(parts, ",")
}

// TestFirmwareUpdatePCRAuthorization: a real agent on a real swtpm, a real
// archive behind Mosquitto. The device is enrolled with an operator's
// PCR-policy key; a chain is sealed; tpm2_pcrextend moves PCR 0 as a
// firmware update would; the agent keeps answering 201 and reports the
// mismatch; the operator signs the new values and ships them to the running
// agent; sealing resumes and the archive accepts the next bundles with no
// re-approval. Every acknowledged export is archived exactly once, the
// chain verifies with `edgeseal verify`, every quote passes
// tpm2_checkquote, and the agent starts again (data key unsealed) under the
// new authorization.
func TestFirmwareUpdatePCRAuthorization(t *testing.T) {
	needAgent(t)
	swtpmtest.Need(t, "tpm2_pcrextend")
	checkquote := swtpmtest.Need(t, "tpm2_checkquote")
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	ctx := t.Context()
	sw := swtpmtest.Start(t)
	host, port, _ := strings.Cut(sw.Addr, ":")
	tcti := "swtpm:host=" + host + ",port=" + port
	brk := mqtttest.Start(t, nil)

	a := newAgentDir(t, agentOpts{sealEvery: 50, sealInterval: "300ms", maxBody: "64 KiB", notEnrolled: true})
	cfgPath := filepath.Join(a.dir, "agent.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("tpm: simulator:sim"), []byte("tpm: "+sw.Spec), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	a.tpmSpec = sw.Spec

	// The operator's offline key; enrollment on a real TPM insists on a
	// PCR policy.
	keys := t.TempDir()
	pcrKey := filepath.Join(keys, "pcr-key")
	if out, code := bundlesCLI(t, "tpm", "pcr-key", "new", "--out", pcrKey); code != 0 {
		t.Fatalf("pcr-key new: %s", out)
	}
	if fi, err := os.Stat(pcrKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi.Mode(), err)
	}
	state := filepath.Join(a.dir, "data", "tpm")
	trustFile := filepath.Join(keys, "DEVICE.json")
	rk := filepath.Join(keys, "recovery.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk); code != 0 {
		t.Fatalf("recovery-keygen: %s", out)
	}
	enroll := []string{"tpm", "enroll", "--tpm", sw.Spec, "--state", state, "--site", "e2e-site", "--device", "dev-1", "--out", trustFile,
		"--recovery-key", rk + ".pub"}
	if out, code := bundlesCLI(t, enroll...); code != 2 || !strings.Contains(out, "--pcr-policy-key") {
		t.Fatalf("enroll on swtpm without a PCR policy: exit %d\n%s", code, out)
	}
	out, code := bundlesCLI(t, append(enroll, "--pcr-policy-key", pcrKey+".pub")...)
	if code != 0 {
		t.Fatalf("tpm enroll: %s", out)
	}
	m := regexp.MustCompile(`--pcrs (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("enroll did not print the values to authorize:\n%s", out)
	}
	authorize := func(values, name string) {
		t.Helper()
		f := filepath.Join(keys, name)
		if out, code := bundlesCLI(t, "tpm", "authorize-pcrs", "--key", pcrKey, "--device", "e2e-site/dev-1", "--pcrs", values, "--out", f); code != 0 {
			t.Fatalf("tpm authorize-pcrs: %s", out)
		}
		if out, code := bundlesCLI(t, "agent", "authorize-pcrs", "--config", cfgPath, f); code != 0 {
			t.Fatalf("agent authorize-pcrs: %s", out)
		}
	}
	authorize(m[1], "auth-enroll.json")
	// An authorization for another device is refused by the command.
	other := filepath.Join(keys, "other.json")
	if out, code := bundlesCLI(t, "tpm", "authorize-pcrs", "--key", pcrKey, "--device", "e2e-site/dev-2", "--pcrs", m[1], "--out", other); code != 0 {
		t.Fatalf("authorize-pcrs: %s", out)
	}
	if out, code := bundlesCLI(t, "agent", "authorize-pcrs", "--config", cfgPath, other); code == 0 || !strings.Contains(out, "device") {
		t.Fatalf("agent authorize-pcrs accepted another device's statement: %s", out)
	}

	// The archive knows the device (approved once) and its PCR policy key.
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, brk.URL, "fw-archive")
	keyFile, akey := archiveKeyOf(t, adir)
	enrollDevices(t, acfg, trustFile)
	appendFile(t, cfgPath, fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  resend_after: 5s\n", brk.URL, keyFile+".pub"))
	ar := startArchiveProc(t, acfg)
	ag := a.start(t, true)
	exp := startExporter(t, a, 1, nil, exportIDs("fw"), pcrExportPause)

	// A chain is sealed and archived.
	waitStatus(t, a, ag, "first bundles archived", func(st *agent.Status) bool {
		return st.LastSeal != nil && st.LastSeal.Size > 20 && st.Outbox == 0 && st.TPM.State == agent.TPMOK
	})

	// The firmware update.
	extCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	if out, err := exec.CommandContext(extCtx, swtpmtest.Need(t, "tpm2_pcrextend"), "-T", tcti, "0:sha256="+strings.Repeat("f1", 32)).CombinedOutput(); err != nil {
		cancel()
		t.Fatalf("tpm2_pcrextend: %v\n%s", err, out)
	}
	cancel()
	before := exp.count()
	st := waitStatus(t, a, ag, "mismatch reported", func(st *agent.Status) bool {
		return st.TPM.State == agent.TPMPCRMismatch && len(st.TPM.Changed) == 1 && st.TPM.Changed[0] == 0
	})
	stuck := st.LastSeal.Size
	// Exports keep being answered 201 while nothing seals.
	waitStatus(t, a, ag, "journaling goes on", func(st *agent.Status) bool {
		return exp.count() > before+20 && st.LastSeal.Size == stuck
	})
	stuckExports := exp.count() - before
	if !strings.Contains(ag.stderr.String(), "seal failed; journaling continues") {
		t.Fatalf("the seal failure was not logged:\n%s", tail(ag.stderr.String()))
	}

	// The operator authorizes the new values while the agent runs.
	authorize(pcrread(t, tcti), "auth-fw2.json")
	waitStatus(t, a, ag, "sealing resumed", func(st *agent.Status) bool {
		return st.TPM.State == agent.TPMOK && st.LastSeal.Size > stuck+20 && st.Outbox == 0
	})
	if !strings.Contains(ag.stderr.String(), "PCR AUTHORIZATION APPLIED") {
		t.Fatalf("the authorization was not logged:\n%s", tail(ag.stderr.String()))
	}

	// A restart unseals the data key under the new authorization.
	acked, _ := exp.end(t, "")
	ag.stop()
	ag = a.start(t, true)
	exp = startExporter(t, a, 1, acked, exportIDs("restart"), pcrExportPause)
	waitStatus(t, a, ag, "after restart", func(st *agent.Status) bool { return exp.count() > len(acked)+10 })
	acked, maxSeq := exp.end(t, "")
	waitStatus(t, a, ag, "drained", func(st *agent.Status) bool {
		return st.Outbox == 0 && st.LastSeal != nil && st.LastSeal.Size > maxSeq
	})
	ag.kill()
	// doctor, with the agent stopped, installs the authorization as the
	// agent does and finds the keys working and the PCRs as authorized.
	out, _ = bundlesCLI(t, "doctor", "--config", cfgPath, "--trust", trustFile)
	for _, want := range []string{"ok    pcr-auth:", "ok    pcrs:", "signing key signs, data key unseals", "authorization records carry"} {
		if !strings.Contains(out, want) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
	ar.stop(t)
	checkOutageEnd(ctx, t, a, filepath.Join(adir, "data"), akey, acked)
	t.Logf("%d exports acknowledged, %d during the mismatch", len(acked), stuckExports)
	checkFirmwareChain(t, filepath.Join(adir, "data"), trustFile, checkquote)
}

// checkFirmwareChain writes the archived bundles out in log order, runs
// `edgeseal verify` over the whole chain, tpm2_checkquote over every
// quote, and checks that one bundle carries the authorization of the new
// values and that the quotes after it show them.
func checkFirmwareChain(t *testing.T, archiveData, trustFile, checkquote string) {
	t.Helper()
	auths, after := 0, 0
	files, skipped := archivedChain(t, archiveData, func(idx uint64, b *bundle.Bundle, recs []*custody.Record) error {
		for _, r := range recs {
			if r.Type == custody.TypePCRsAuthorized {
				auths++
			}
		}
		if auths >= 2 {
			after++
		}
		// tpm2_checkquote over the bundle's own quote files.
		_, st, err := b.Statement()
		if err != nil {
			return err
		}
		nonce := sha256.Sum256([]byte(st.Predicate.Checkpoint))
		qdir := t.TempDir()
		for in, name := range map[string]string{bundle.PathAKPEM: "ak.pem", bundle.PathQuoteMsg: "msg", bundle.PathQuoteSig: "sig", bundle.PathQuotePCRs: "pcrs"} {
			if err := os.WriteFile(filepath.Join(qdir, name), b.Files[in], 0o644); err != nil {
				return err
			}
		}
		cmd := exec.Command(checkquote, "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs", "-g", "sha256", "-q", hex.EncodeToString(nonce[:]))
		cmd.Dir = qdir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("bundle %d: tpm2_checkquote: %v\n%s", idx, err, out)
		}
		return nil
	})
	// The enrollment-time authorization, then the firmware update's.
	if skipped != 0 || auths != 2 || after < 2 {
		t.Fatalf("%d authorization records in the archive, %d bundles from the second on; want 2 and at least 2", auths, after)
	}
	t.Logf("%d bundles archived, %d after the firmware update's authorization", len(files), after)
	out, code := bundlesCLI(t, append(append([]string{"verify"}, files...), "--trust", trustFile)...)
	if code != 0 {
		t.Fatalf("edgeseal verify over the chain: exit %d\n%s", code, out)
	}
	// Without the first bundles (whose records carry the authorization) the
	// later ones do not verify against the trust's values.
	last := files[len(files)-1]
	if out, code := bundlesCLI(t, "verify", last, "--trust", trustFile); code == 0 {
		t.Fatalf("the last bundle verified alone against the enrollment values:\n%s", out)
	}
}
