//go:build cgo && unix

package agentd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// TestRunStartsAndStops runs the daemon in the test's process on the
// in-process simulator: while it opens the TPM its socket already answers,
// 503 not_ready with Retry-After (an export and /readyz), not connection
// refused; /readyz answers 200 once it is up, a cancelled context stops it cleanly (nil), and the journal it
// leaves opens again as a stopped agent's and its tail verifies.
func TestRunStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "agentd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "agent.sock")
	policy, err := filepath.Abs(filepath.Join("..", "policy", "testdata", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`site: s1
device: d1
data_dir: data
tpm: simulator:sim
tpm_insecure_simulator: true
seal:
  every: 1000
  interval: 1h
api:
  socket: %s
policy: %s
principals:
  - {name: n8n-prod, token_sha256: %q, roles: [exporter]}
`, socket, policy, config.HashToken("token-of-n8n-prod-0123456789abcdef"))
	cfgFile := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(t.Context(), cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	opening := make(chan struct{})
	release := make(chan struct{})
	gated := func(dir string) (tpm.Transport, error) {
		close(opening)
		<-release
		return simulator.Open(dir)
	}
	go func() {
		done <- Run(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Simulator: gated})
	}()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	select {
	case <-opening:
	case err := <-done:
		t.Fatalf("Run returned before opening the TPM: %v", err)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/v1/exports"}, {"GET", "/readyz"}} {
		req, _ := http.NewRequest(c.method, "http://agent"+c.path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer token-of-n8n-prod-0123456789abcdef")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s while the TPM opens: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), `"not_ready"`) {
			t.Fatalf("%s %s while the TPM opens: %d Retry-After %q %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	close(release)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://agent/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run on cancel: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not stop")
	}

	st, err := agent.OpenStopped(t.Context(), cfg, simulator.Open, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("the stopped agent's journal: %v", err)
	}
	defer st.Close()
	if st.Journal.Size() == 0 {
		t.Fatal("the daemon journaled nothing (no key.create)")
	}
	if n, err := agent.VerifyTail(t.Context(), st.Journal, cfg.DeviceID(), 1000); err != nil || n != st.Journal.Size() {
		t.Fatalf("tail: %d of %d records: %v", n, st.Journal.Size(), err)
	}
	if _, err := agent.OpenJournal(t.Context(), cfg, nil, agent.JournalOptions{}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a second open while the journal is open: %v, want store.ErrLocked", err)
	}
}
