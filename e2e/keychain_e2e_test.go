package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// TestKeyRotationEndToEnd: an agent core on the simulated TPM rotates its
// signing key three times inside one chain while its outbox goes over
// MQTT to the archive daemon (embedded broker): every bundle is accepted
// without an operator step, `edgeseal verify` verifies the chain against
// the first key's DEVICE.json and prints the key history, and every key
// operation is a record inside a sealed bundle. Then the operator revokes
// the key in force (`edgeseal archive devices revoke-key`): the next
// bundle is refused with a signed rejection naming the key and stays in
// the agent's outbox.
func TestKeyRotationEndToEnd(t *testing.T) {
	needAgent(t)
	ctx := t.Context()
	ar := startEmbeddedArchive(t)
	dir := t.TempDir()
	tp, j := e2etest.OpenDevice(ctx, t, simulatorOpener, dir, store.Options{})

	// Enroll and approve the first key with the real binary.
	trust, err := trustfile.NewTrust("kc-site", "dev-1", agent.BundleIdentity(tp.Identity()))
	if err != nil {
		t.Fatal(err)
	}
	trustRaw, _ := trust.Marshal()
	trustFile := filepath.Join(dir, "DEVICE.json")
	if err := os.WriteFile(trustFile, trustRaw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := bundlesCLI(t, "archive", "enroll-file", trustFile, "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("enroll-file: %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "kc-site/dev-1", "--key", trust.KeyID, "--no-activation", "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("approve: %d\n%s", code, out)
	}

	var pub *sync.Publisher
	core, err := agent.Open(ctx, agent.Options{Site: "kc-site", Device: "dev-1", SealInterval: time.Hour,
		AfterSeal: func() {
			if pub != nil {
				pub.Wake()
			}
		}}, j, tp)
	if err != nil {
		t.Fatal(err)
	}
	archiveKey, err := readEd25519Public(ar.keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var mu gosync.Mutex
	var rejections []*sync.Rejection
	pub, err = sync.NewPublisher(sync.PublisherOptions{
		Broker: ar.broker, Site: "kc-site", Device: "dev-1", Outbox: core, ArchiveKey: archiveKey,
		OnReceipts: core.JournalReceipts, OnSent: core.MarkSent, RetryHeld: -1, Tick: 100 * time.Millisecond,
		OnRejection: func(_ context.Context, id string, rej *sync.Rejection, _ []byte) {
			mu.Lock()
			rejections = append(rejections, rej)
			mu.Unlock()
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); _ = pub.Start(pctx) }()
	defer func() { stop(); <-pdone }()

	bundles := filepath.Join(dir, "bundles")
	if err := os.MkdirAll(bundles, 0o755); err != nil {
		t.Fatal(err)
	}
	// seal seals what is pending and keeps a copy of the bundle (the
	// outbox drops it once receipted).
	n := 0
	seal := func(tag string) *agent.SealResult {
		t.Helper()
		for i := range 2 {
			if _, err := core.Export(ctx, agent.Export{
				Actor: custody.Actor{Kind: "principal", ID: "e2e", Via: "test"}, ExportID: fmt.Sprintf("%s-%d", tag, i), App: "n8n",
				Policy: wire.FormatHash(sha256.Sum256([]byte("policy"))), MediaType: "text/csv", Data: []byte(tag),
			}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := core.Seal(ctx)
		if err != nil || res == nil {
			t.Fatalf("seal: %v", err)
		}
		raw, ok, err := j.OutboxGet(ctx, res.ID)
		if err != nil || !ok {
			t.Fatalf("outbox %s: %v", res.ID, err)
		}
		n++
		if err := os.WriteFile(filepath.Join(bundles, fmt.Sprintf("%03d.bundle.tar", n)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		return res
	}
	waitAccepted := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for ar.stats(t).Accepted < want {
			if time.Now().After(deadline) {
				t.Fatalf("archive accepted %d of %d bundles\n%s", ar.stats(t).Accepted, want, ar.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	keys := []string{tp.Identity().KeyID}
	seal("start")
	for i := range 3 {
		rot, err := core.RotateKey(ctx, fmt.Sprintf("e2e %d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, rot.NewKeyID)
		seal(fmt.Sprintf("r%d", i))
		waitAccepted(uint64(n))
	}
	if st := ar.stats(t); st.Refused != 0 {
		t.Fatalf("archive refused bundles of a rotating device: %+v\n%s", st, ar.stderr)
	}

	// The chain verifies offline with the first key's trust file.
	paths, _ := filepath.Glob(filepath.Join(bundles, "*.bundle.tar"))
	out, code := bundlesCLI(t, append([]string{"verify", "--trust", trustFile}, paths...)...)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	t.Logf("edgeseal verify:\n%s", out[strings.Index(out, "signing keys of"):])
	for i := range 3 {
		for _, want := range []string{"rotated  " + keys[i+1] + " (from " + keys[i], "revoked  " + keys[i] + ` (reason "rotated")`} {
			if !strings.Contains(out, want) {
				t.Fatalf("verify output lacks %q:\n%s", want, out)
			}
		}
	}
	if !strings.Contains(out, "created  "+keys[0]) || !strings.Contains(out, "in force: "+keys[3]) {
		t.Fatalf("verify output lacks the key history:\n%s", out)
	}

	// Every key operation is a record in a sealed bundle.
	count := map[string][]string{}
	for _, p := range paths {
		b := readBundle(t, p)
		lines, _ := b.Records()
		for _, l := range lines {
			r, err := custody.ParseRecord(l)
			if err != nil {
				t.Fatal(err)
			}
			switch r.Type {
			case custody.TypeKeyCreate:
				kb, _ := custody.ParseKeyCreateBody(r.Body)
				count[r.Type] = append(count[r.Type], kb.KeyID)
			case custody.TypeKeyRotate:
				kb, _, _ := custody.ParseKeyRotateBody(r.Body)
				count[r.Type] = append(count[r.Type], kb.NewKeyID)
			case custody.TypeKeyRevoke:
				kb, _ := custody.ParseKeyRevokeBody(r.Body)
				count[r.Type] = append(count[r.Type], kb.KeyID)
			}
		}
	}
	if !slices.Equal(count[custody.TypeKeyCreate], keys[:1]) || !slices.Equal(count[custody.TypeKeyRotate], keys[1:]) ||
		!slices.Equal(count[custody.TypeKeyRevoke], keys[:3]) {
		t.Fatalf("key records in the bundles: %v, keys %v", count, keys)
	}

	// The operator revokes the key in force: its next bundle is refused
	// with a signed rejection naming it and stays in the outbox.
	if out, code := bundlesCLI(t, "archive", "devices", "revoke-key", "kc-site/dev-1", keys[3], "--reason", "e2e leak", "--by", "alice", "--data-dir", ar.dataDir); code != 0 ||
		!strings.Contains(out, "revoked") {
		t.Fatalf("revoke-key: %d\n%s", code, out)
	}
	res := seal("after-revoke")
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		got := len(rejections)
		mu.Unlock()
		if got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rejection of the bundle sealed by a revoked key\n%s", ar.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rej := rejections[0]
	if !slices.Contains(rej.Checks, archive.CheckKeyRevoked) || !strings.Contains(rej.Reason, keys[3]) || !strings.Contains(rej.Reason, "e2e leak") {
		t.Fatalf("rejection %+v", rej)
	}
	if raw, ok, err := j.OutboxGet(ctx, res.ID); err != nil || !ok || sha256.Sum256(raw) != res.Digest {
		t.Fatalf("refused bundle %s not kept in the outbox: %v %v", res.ID, ok, err)
	}
	if st := ar.stats(t); st.Accepted != uint64(n-1) || st.Refused != 1 {
		t.Fatalf("archive: %+v", st)
	}
	if !bytes.Contains([]byte(ar.logs()), []byte(archive.CheckKeyRevoked)) {
		t.Fatalf("archive log does not name %s:\n%s", archive.CheckKeyRevoked, ar.stderr)
	}
}

// TestAgentRotateKeyCLI: `edgeseal agent rotate-key` (agent stopped)
// rotates the signing key and seals the rotation into the outbox; the
// bundle, exported with `bundles export`, verifies with `edgeseal verify`
// against the DEVICE.json of the key before, which prints the history.
func TestAgentRotateKeyCLI(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	cfg := filepath.Join(a.dir, "agent.yaml")
	if out, code := bundlesCLI(t, "agent", "rotate-key", "--config", cfg); code != 2 || !strings.Contains(out, "--reason") {
		t.Fatalf("rotate-key without --reason: exit %d\n%s", code, out)
	}
	trustFile := enrollFile(t, a)
	trust := readTrust(t, trustFile)
	out, code := bundlesCLI(t, "agent", "rotate-key", "--config", cfg, "--reason", "operator test")
	if code != 0 || !strings.Contains(out, "rotated: "+trust.KeyID+" -> sha256:") || !strings.Contains(out, "1 bundles sealed") {
		t.Fatalf("rotate-key: exit %d\n%s", code, out)
	}
	media := t.TempDir()
	if out, code := bundlesCLI(t, "bundles", "export", "--config", cfg, "--to", media); code != 0 {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	paths, _ := filepath.Glob(filepath.Join(media, "*.bundle.tar"))
	if len(paths) != 1 {
		t.Fatalf("exported %v", paths)
	}
	out, code = bundlesCLI(t, "verify", paths[0], "--trust", trustFile)
	if code != 0 || !strings.Contains(out, "created  "+trust.KeyID) || !strings.Contains(out, `rotated  sha256:`) ||
		!strings.Contains(out, "revoked  "+trust.KeyID+` (reason "rotated")`) || strings.Contains(out, "in force: "+trust.KeyID) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	// The new key is in force: a fresh DEVICE.json names it.
	again := enrollFile(t, a)
	raw, _ := os.ReadFile(again)
	if nt, err := trustfile.ParseTrust(raw); err != nil || nt.KeyID == trust.KeyID || !strings.Contains(out, "in force: "+nt.KeyID) {
		t.Fatalf("key in force after rotate-key: %v\n%s", err, out)
	}
}
