package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// acceptedRecord is a journal record found in a bundle the archive
// accepted (a verified receipt names the bundle's digest).
type acceptedRecord struct {
	epoch  uint64 // the receipt's epoch (0 and 1 both mean epoch 1)
	bundle string // the bundle file
	rec    []byte // the record's canonical bytes
}

// acceptedRecords reads the bundles archive import took from media (the
// receipts it wrote there, verified under the archive's key) and adds
// their records to got, keyed by epoch and seq. It returns the bundle
// files in chain order and their receipts' epochs.
func acceptedRecords(t *testing.T, media, akid string, apub ed25519.PublicKey, got map[[2]uint64]acceptedRecord) ([]string, []uint64) {
	t.Helper()
	byDigest := map[string]*archivesig.Receipt{}
	for _, raw := range answers(t, media, ".receipt.json") {
		r, err := archivesig.VerifyReceipt(raw, akid, apub)
		if err != nil {
			t.Fatalf("receipt in %s: %v", media, err)
		}
		byDigest[r.BundleDigest] = r
	}
	files, _ := filepath.Glob(filepath.Join(media, "*.bundle.tar"))
	sort.Strings(files)
	if len(files) == 0 || len(byDigest) != len(files) {
		t.Fatalf("%s: %d bundles, %d receipts", media, len(files), len(byDigest))
	}
	var epochs []uint64
	for _, f := range files {
		fb, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rc := byDigest[wire.FormatHash(sha256.Sum256(fb))]
		if rc == nil {
			t.Fatalf("bundle %s has no receipt", f)
		}
		ep := max(rc.Epoch, 1)
		epochs = append(epochs, ep)
		b, err := bundle.Read(bytes.NewReader(fb), bundle.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		recs, parsed := bundleRecords(t, b)
		for i, rec := range recs {
			r := parsed[i]
			got[[2]uint64{ep, r.Seq}] = acceptedRecord{epoch: ep, bundle: f, rec: rec}
		}
	}
	return files, epochs
}

// authorizePrinted signs, with the operator's PCR-policy key, the PCR
// values a command printed (`--pcrs VALUES`) and stores the statement for
// the agent of cfg.
func authorizePrinted(t *testing.T, pcrKey, cfg, printed string) {
	t.Helper()
	m := regexp.MustCompile(`--device (\S+) --pcrs (\S+)`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("no PCR values to authorize printed:\n%s", printed)
	}
	f := filepath.Join(t.TempDir(), "pcr-authorization.json")
	if out, code := bundlesCLI(t, "tpm", "authorize-pcrs", "--key", pcrKey, "--device", m[1], "--pcrs", m[2], "--out", f); code != 0 {
		t.Fatalf("tpm authorize-pcrs: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "agent", "authorize-pcrs", "--config", cfg, f); code != 0 {
		t.Fatalf("agent authorize-pcrs: exit %d\n%s", code, out)
	}
}

// TestTPMWipeToEpoch2: the whole runbook of a TPM clear, with the real
// binary, a real swtpm and a real archive over the air gap. A device
// enrolled with a recovery key delivers two bundles (archived and
// receipted), seals one more that never leaves the site, and
// acknowledges exports it has not sealed yet when its TPM is wiped. The
// agent refuses to start and says what to do; `tpm recover` writes the
// new trust file; the archive operator enrolls the new key and rekeys the
// device; the agent's outbox drains into epoch 2, every bundle receipted.
// Every export the API acknowledged, before and after the wipe, is in a
// bundle the archive accepted with the seq and leaf hash the API
// returned; each epoch's chain verifies with its own trust file and
// `edgeseal verify` prints the key history with the earlier TPM's key.
func TestTPMWipeToEpoch2(t *testing.T) {
	needAgent(t)
	const dev = "e2e-site/dev-1"
	sw, a, cfg := swtpmAgent(t)
	// Keys bound to the operator's PCR-policy key; the PCR values of the
	// TPM authorized by a statement the agent journals.
	pcrKey := newPCRKey(t)
	rk, trust1, enrolled := enrollSwtpm(t, a, sw.Spec, "--pcr-policy-key", pcrKey+".pub")
	key1 := keyIDOf(t, trust1)
	authorizePrinted(t, pcrKey, cfg, enrolled)

	adata := t.TempDir()
	arch := func(args ...string) (string, int) {
		t.Helper()
		return bundlesCLI(t, append(append([]string{"archive"}, args...), "--data-dir", adata)...)
	}
	if out, code := arch("enroll-file", trust1); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := arch("devices", "approve", dev, "--key", key1, "--no-activation"); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	_, apub, akid := archiveKeys(t, adata)
	archivePub := filepath.Join(adata, "archive.key.pub")

	acked := map[string]agent.ExportReceipt{}
	var order []string
	n := 0
	post := func(c *api.Client, k int) []string {
		var ids []string
		for range k {
			id := fmt.Sprintf("inv-%03d", n)
			acked[id] = postExport(t, c, id, n)
			order = append(order, id)
			ids = append(ids, id)
			n++
		}
		return ids
	}
	statusOf := func(c *api.Client, ids []string, want string) {
		t.Helper()
		for _, id := range ids {
			info := exportState(t, c, id)
			if info.Status != want || info.Seq != acked[id].Seq || info.Leaf != acked[id].Leaf {
				t.Fatalf("export %s: status %s seq %d leaf %s, want %s and what the API acknowledged %+v", id, info.Status, info.Seq, info.Leaf, want, acked[id])
			}
		}
	}

	// Epoch 1, delivered: two bundles, archived and receipted.
	p := a.start(t, true)
	c := unixClient(a.socket)
	delivered := post(c, 3)
	sealNow(t, c)
	delivered = append(delivered, post(c, 3)...)
	sealNow(t, c)
	p.stop()
	media1 := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media1); code != 0 || !strings.Contains(out, "2 bundle(s)") {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	if out, code := arch("import", media1); code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
		t.Fatalf("archive import of epoch 1: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", archivePub, media1); code != 0 || !strings.Contains(out, "2 delivered") {
		t.Fatalf("import-receipts of epoch 1: exit %d\n%s", code, out)
	}

	// Epoch 1, not delivered: one more bundle sealed (the air gap is not
	// carried), then exports acknowledged and not sealed when the device
	// loses power.
	p = a.start(t, true)
	statusOf(c, delivered, agent.StatusArchived)
	sealedOnly := post(c, 2)
	sealNow(t, c)
	unsealed := post(c, 2)
	statusOf(c, sealedOnly, agent.StatusSealed)
	statusOf(c, unsealed, agent.StatusJournaled)
	p.kill()
	undelivered := a.outboxIDs(t, sw.Spec)
	if len(undelivered) != 1 {
		t.Fatalf("outbox before the wipe: %v, want 1 undelivered bundle", undelivered)
	}

	// The TPM is wiped: swtpm's state is gone, a fresh one starts.
	sw2 := a.wipeTPM(t, sw)

	// Recovery on the device.
	trust2 := filepath.Join(t.TempDir(), "DEVICE-2.json")
	out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", trust2)
	if code != 0 {
		t.Fatalf("tpm recover: exit %d\n%s", code, out)
	}
	t.Logf("tpm recover:\n%s", out)
	key2 := keyIDOf(t, trust2)
	rekeyCmd := "edgeseal archive devices rekey " + dev + " --key " + key2
	if key2 == key1 || !strings.Contains(out, "new sealing epoch 2") || !strings.Contains(out, rekeyCmd) {
		t.Fatalf("tpm recover: new key %s (old %s), output lacks the epoch or %q", key2, key1, rekeyCmd)
	}
	if !strings.Contains(out, "bound to the same PCR policy key") {
		t.Fatalf("tpm recover does not say the new keys keep the PCR policy key:\n%s", out)
	}
	// Running it again is safe: the new keys unseal under the stored
	// authorization, nothing is left to do.
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", filepath.Join(t.TempDir(), "again.json")); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("second tpm recover: exit %d\n%s", code, out)
	}
	retired := filepath.Join(a.dir, "data", "epoch-1-outbox", undelivered[0]+".bundle")
	if _, err := os.Stat(retired); err != nil {
		t.Fatalf("the undelivered bundle of epoch 1: %v", err)
	}

	// The archive operator: enroll the new key, then rekey (the archive
	// is not running: it is only ever run for `archive import` here).
	out, code = arch("enroll-file", trust2)
	if code != 0 || !strings.Contains(out, rekeyCmd) {
		t.Fatalf("enroll-file of the new key: exit %d\n%s", code, out)
	}
	out, code = arch("devices", "rekey", dev, "--key", key2, "--no-activation", "--reason", "TPM cleared", "--by", "ops")
	if code != 0 || !strings.Contains(out, "epoch 1 (key "+key1+") closed at checkpoint") || !strings.Contains(out, "after 2 bundle(s)") ||
		!strings.Contains(out, "epoch 2 opened with key "+key2) {
		t.Fatalf("archive devices rekey: exit %d\n%s", code, out)
	}
	t.Logf("archive devices rekey:\n%s", out)

	// The agent starts, takes more exports and seals; its outbox drains
	// into epoch 2 at the archive.
	p = a.start(t, true)
	after := post(c, 2)
	sealNow(t, c)
	statusOf(c, after, agent.StatusSealed)
	p.stop()
	media2 := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media2); code != 0 {
		t.Fatalf("bundles export of epoch 2: exit %d\n%s", code, out)
	}
	files2, _ := filepath.Glob(filepath.Join(media2, "*.bundle.tar"))
	if len(files2) == 0 {
		t.Fatal("no epoch 2 bundles exported")
	}
	out, code = arch("import", media2)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d accepted, 0 refused", len(files2))) {
		t.Fatalf("archive import of epoch 2: exit %d\n%s", code, out)
	}
	out, code = bundlesCLI(t, "bundles", "import-receipts", "--config", cfg, "--archive-key", archivePub, media2)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d delivered", len(files2))) {
		t.Fatalf("import-receipts of epoch 2: exit %d\n%s", code, out)
	}
	j := a.swtpmJournal(t, sw2.Spec)
	var left []string
	if err := j.OutboxIDs(context.Background(), func(id string) error { left = append(left, id); return nil }); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if len(left) != 0 {
		t.Fatalf("outbox after epoch 2 was receipted: %v", left)
	}

	// What the archive accepted, by epoch, from its verified receipts.
	got := map[[2]uint64]acceptedRecord{}
	chain1, ep1 := acceptedRecords(t, media1, akid, apub, got)
	chain2, ep2 := acceptedRecords(t, media2, akid, apub, got)
	for _, e := range ep1 {
		if e != 1 {
			t.Fatalf("epoch 1 bundle receipted in epoch %d", e)
		}
	}
	for _, e := range ep2 {
		if e != 2 {
			t.Fatalf("epoch 2 bundle receipted in epoch %d", e)
		}
	}

	// 0 acknowledged exports lost, record by record.
	found := func(id string, epoch uint64) bool {
		rc := acked[id]
		ar, ok := got[[2]uint64{epoch, rc.Seq}]
		return ok && wire.FormatHash(merkle.LeafHash(ar.rec)) == rc.Leaf
	}
	for _, id := range order {
		if !found(id, 1) && !found(id, 2) {
			t.Fatalf("export %s (seq %d, leaf %s) acknowledged by the API is in no bundle the archive accepted", id, acked[id].Seq, acked[id].Leaf)
		}
		if !found(id, 2) {
			t.Fatalf("export %s (seq %d) is not in epoch 2: the journal was not sealed again from record 0", id, acked[id].Seq)
		}
	}
	for _, id := range delivered {
		if !found(id, 1) {
			t.Fatalf("delivered export %s is not in epoch 1's accepted bundles", id)
		}
	}
	// The recovery itself is sealed in epoch 2, once.
	recovers := 0
	for k, ar := range got {
		r, err := custody.ParseRecord(ar.rec)
		if err != nil || r.Type != custody.TypeKeyRecover {
			continue
		}
		var kb agent.KeyRecoverBody
		if err := json.Unmarshal(r.Body, &kb); err != nil || k[0] != 2 || kb.Case != agent.RecoverNewTPM || kb.Epoch != 2 ||
			kb.KeyID != key2 || kb.PreviousKeyID != key1 || kb.RetiredBundles != 1 {
			t.Fatalf("key.recover in epoch %d: %s %v", k[0], r.Body, err)
		}
		recovers++
	}
	if recovers != 1 {
		t.Fatalf("%d key.recover records archived, want 1", recovers)
	}
	t.Logf("%d acknowledged exports (%d before the wipe) archived: %d bundles in epoch 1, %d in epoch 2",
		len(order), len(order)-len(after), len(chain1), len(chain2))

	// Back on the device: every export is archived, under what the API said.
	p = a.start(t, true)
	statusOf(c, order, agent.StatusArchived)
	p.stop()

	// Each epoch verifies with its own trust file; the new one prints the
	// key history with the earlier TPM's key and the recovery.
	out, code = bundlesCLI(t, append(append([]string{"verify"}, chain2...), "--trust", trust2)...)
	if code != 0 || strings.Count(out, "  VERIFIED") != len(chain2) {
		t.Fatalf("verify of epoch 2 with the new trust file: exit %d\n%s", code, out)
	}
	t.Logf("verify of epoch 2:\n%s", out)
	for _, re := range []string{
		`signing keys of ` + regexp.QuoteMeta(dev) + `:`,
		`created\s+` + regexp.QuoteMeta(key1) + ` \(earlier TPM\)`,
		`created\s+` + regexp.QuoteMeta(key2) + `\n`,
		`recovered ` + regexp.QuoteMeta(key2) + ` \(from ` + regexp.QuoteMeta(key1) + `, new-tpm\)`,
		`in force: ` + regexp.QuoteMeta(key2),
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("verify's key history does not match %q:\n%s", re, out)
		}
	}
	old := append(append([]string{"verify"}, chain1...), retired, "--trust", trust1)
	if out, code := bundlesCLI(t, old...); code != 0 || strings.Count(out, "  VERIFIED") != len(chain1)+1 {
		t.Fatalf("verify of epoch 1 with the old trust file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "verify", chain2[0], "--trust", trust1); code == 0 {
		t.Fatalf("an epoch 2 bundle verifies with the lost key's trust file:\n%s", out)
	}

	// The recovery key was used: the device is wrapped to a new one.
	rk2 := filepath.Join(t.TempDir(), "recovery-2.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk2); code != 0 {
		t.Fatalf("recovery-keygen: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "tpm", "rewrap", "--config", cfg, "--recovery-key", rk2+".pub"); code != 0 || !strings.Contains(out, "wrapped to recovery key") {
		t.Fatalf("tpm rewrap of the new keys: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk2); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("recover with the new recovery key: exit %d\n%s", code, out)
	}
}

// TestRecoverNewTPMOtherPCRs: keys bound to a PCR-policy key, and the
// new TPM shows other PCR values than the authorized ones (a board swap
// with other firmware). `tpm recover` makes the new keys anyway and
// prints the values to authorize; until they are, the agent refuses to
// start; once they are, it seals the whole journal under the new key.
func TestRecoverNewTPMOtherPCRs(t *testing.T) {
	needAgent(t)
	extend := swtpmtest.Need(t, "tpm2_pcrextend")
	sw, a, cfg := swtpmAgent(t)
	pcrKey := newPCRKey(t)
	rk, _, enrolled := enrollSwtpm(t, a, sw.Spec, "--pcr-policy-key", pcrKey+".pub")
	authorizePrinted(t, pcrKey, cfg, enrolled)
	p := a.start(t, true)
	c := unixClient(a.socket)
	rc := postExport(t, c, "inv-1", 1)
	sealNow(t, c)
	p.stop()

	sw.Stop()
	if err := os.RemoveAll(sw.StateDir); err != nil {
		t.Fatal(err)
	}
	sw2 := swtpmtest.Start(t)
	host, port, _ := strings.Cut(sw2.Addr, ":")
	if out, err := exec.CommandContext(t.Context(), extend, "-T", "swtpm:host="+host+",port="+port, "0:sha256="+strings.Repeat("f1", 32)).CombinedOutput(); err != nil {
		t.Fatalf("tpm2_pcrextend: %v\n%s", err, out)
	}
	a.setTPM(t, sw2.Spec)
	trust2 := filepath.Join(t.TempDir(), "DEVICE-2.json")
	out, code := bundlesCLI(t, "tpm", "recover", "--config", cfg, "--recovery-key", rk, "--out", trust2)
	if code != 0 || !strings.Contains(out, "PCR values are not authorized yet") || !strings.Contains(out, "--pcrs 0=") {
		t.Fatalf("tpm recover on a TPM with other PCR values: exit %d\n%s", code, out)
	}
	t.Logf("tpm recover:\n%s", out)
	t.Logf("agent before the authorization:\n%s", a.refusesToStart(t, "PCRs differ from the authorized values", "edgeseal tpm authorize-pcrs --key PCR-KEY", "edgeseal agent authorize-pcrs"))
	authorizePrinted(t, pcrKey, cfg, out)
	p = a.start(t, true)
	info := exportState(t, c, rc.ExportID)
	sealNow(t, c)
	p.stop()
	if info.Seq != rc.Seq || info.Leaf != rc.Leaf {
		t.Fatalf("export after the recovery: %+v, acknowledged %+v", info, rc)
	}
	_, files := exportMedia(t, a)
	if out, code := bundlesCLI(t, append(append([]string{"verify"}, files...), "--trust", trust2)...); code != 0 || strings.Count(out, "  VERIFIED") != len(files) {
		t.Fatalf("verify of the new epoch: exit %d\n%s", code, out)
	}
}
