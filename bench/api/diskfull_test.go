package apibench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	edgeagent "github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/internal/tmpfstest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// postCSV posts a raw CSV export and returns the status, the receipt (on
// 201), the error body and Retry-After otherwise.
func postCSV(t *testing.T, c *api.Client, n int, size int) (int, edgeagent.ExportReceipt, string, time.Duration) {
	t.Helper()
	line := fmt.Sprintf("row,%d,", n)
	body := []byte(strings.Repeat(line+strings.Repeat("x", 64-len(line)-1)+"\n", size/64))
	meta := api.ExportMeta{Workflow: "files", App: "bench", Classification: "internal", Destination: "archive", Purpose: "disk full"}
	res, err := c.Export(context.Background(), meta, "text/csv", body)
	var se *api.StatusError
	switch {
	case errors.As(err, &se):
		return se.Status, edgeagent.ExportReceipt{}, string(se.Body), se.RetryAfter
	case err != nil:
		t.Fatal(err)
	}
	return res.Status, res.Receipt, string(res.Body), 0
}

// TestAPIDiskFull runs the real agent with its data dir on a small tmpfs,
// fills the disk through POST /v1/exports until the agent answers 503
// (disk nearly full, store.Options.MinFreeBytes at its default), then
// deletes a filler file and checks that exports are taken again, and that
// after a clean stop every export answered 201 is in the journal and it
// scrubs clean.
func TestAPIDiskFull(t *testing.T) {
	if testing.Short() && !testenv.CI() {
		t.Skip("starts the agent")
	}
	mnt := tmpfstest.Mount(t, 160<<20)
	a, err := startAgent(filepath.Join(mnt, "data"), false)
	if err != nil {
		if strings.Contains(err.Error(), "simulator: not built in") {
			testenv.Missing(t, "%v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { a.stop(); os.RemoveAll(a.dir) })

	// Leave about 24 MiB above the journal's 64 MiB margin.
	filler := filepath.Join(mnt, "filler")
	fill := freeBytes(t, mnt) - store.DefaultMinFreeBytes - 24<<20
	if err := os.WriteFile(filler, bytes.Repeat([]byte{0x5a}, int(fill)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := client(a.socket, 1)
	var acked []edgeagent.ExportReceipt
	var refusal string
	for n := 0; ; n++ {
		status, rc, body, retry := postCSV(t, c, n, 256<<10)
		if status == http.StatusCreated {
			acked = append(acked, rc)
			continue
		}
		if status != http.StatusServiceUnavailable && status != http.StatusInsufficientStorage {
			t.Fatalf("export %d on a filling disk: %d %s", n, status, body)
		}
		if !strings.Contains(body, "disk") || (status == 503 && retry == 0) {
			t.Fatalf("refusal without a clear message or Retry-After: %d %v %s", status, retry, body)
		}
		refusal = fmt.Sprintf("%d %s", status, strings.TrimSpace(body))
		break
	}
	if len(acked) == 0 {
		t.Fatal("nothing accepted before the disk filled")
	}
	t.Logf("%d exports of 256 KiB accepted, then: %s (free %d MiB)", len(acked), refusal, freeBytes(t, mnt)>>20)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := 1 << 20; ; n++ {
		status, rc, body, _ := postCSV(t, c, n, 256<<10)
		if status == http.StatusCreated {
			acked = append(acked, rc)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exports not taken again after space returned: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	a.stop()
	if a.cmd.ProcessState == nil || !a.cmd.ProcessState.Success() {
		t.Fatalf("agent did not stop cleanly: %v\n%.4000s", a.cmd.ProcessState, a.stderr)
	}
	checkJournal(t, a, acked)
}

// checkJournal opens the stopped agent's journal with its data key and
// checks every acknowledged export and a full scrub.
func checkJournal(t *testing.T, a *agent, acked []edgeagent.ExportReceipt) {
	t.Helper()
	ctx := context.Background()
	tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(a.dir, "sim"), tpm.Options{StateDir: filepath.Join(a.dataDir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	key, err := tp.DataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(a.dataDir, "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, rc := range acked {
		rec, err := j.Record(rc.Seq)
		if err != nil {
			t.Fatalf("acknowledged export %s at %d: %v", rc.ExportID, rc.Seq, err)
		}
		if got := wire.FormatHash(merkle.LeafHash(rec)); got != rc.Leaf {
			t.Fatalf("export %s at %d: leaf %s, receipt says %s", rc.ExportID, rc.Seq, got, rc.Leaf)
		}
	}
	if err := j.Scrub(ctx, nil); err != nil {
		t.Fatalf("scrub: %v", err)
	}
}
