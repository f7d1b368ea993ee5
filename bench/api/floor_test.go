package apibench

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/store"
)

// floorEnv, when set in the environment, makes the test binary serve
// the HTTP floor on the unix socket it names instead of running tests.
const floorEnv = "EDGESEAL_APIBENCH_FLOOR_SOCKET"

// floorJournalEnv, when set beside floorEnv, names a directory: the floor
// then journals each body before answering (serveFloor).
const floorJournalEnv = "EDGESEAL_APIBENCH_FLOOR_JOURNAL"

// serveFloor is the HTTP floor: Go's net/http on a unix socket with a
// handler that checks the bearer token, reads the body and answers 201
// with a JSON body the size of the agent's, doing nothing else (no
// decoding, no policy, no fsync). Its rate with the same load generator
// on the same cores is the most any Go HTTP daemon could answer here; the
// agent's rate is read beside it. With journalDir it is the durable
// floor: each body is first appended to a journal there (store.Journal,
// encrypted at rest, the agent's memtable and memory limit) as a small
// record and the body as its payload, and answered once that is durable:
// the least work an export must cost before its 201.
func serveFloor(socket, journalDir string) error {
	var j *store.Journal
	if journalDir != "" {
		debug.SetMemoryLimit(agentd.MemoryLimit) // as the agent
		var err error
		j, err = store.Open(context.Background(), store.Options{Dir: journalDir, EncryptionKey: make([]byte, 32), MemTableSize: agentd.MemTable, ResidentBytes: 2 << 20})
		if err != nil {
			return err
		}
		defer j.Close()
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	var seq atomic.Uint64
	want := []byte("Bearer " + token)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, `{"error":{"code":"bad_request"}}`, http.StatusBadRequest)
			return
		}
		digest := sha256.Sum256(body)
		s := seq.Add(1)
		if j != nil {
			a, err := j.Append(r.Context(), store.Entry{
				Build: func(n uint64, prev [32]byte) ([]byte, error) {
					return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","payload":"%x","bytes":%d}`, n, prev, digest, len(body)), nil
				},
				Payloads: []store.Payload{{Digest: digest, Data: body}},
			})
			if err != nil {
				http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
				return
			}
			s = a.Seq
		}
		id := fmt.Sprintf("exp-%026d", s)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v1/exports/"+id)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"export_id":%q,"seq":%d,"leaf_hash":"%064x","size":%d,"payload_digest":"%x","bytes":%d,"duplicate":false}`+"\n", id, s, s, s+1, digest, len(body))
	})
	return (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}

// startFloor starts this test binary as the HTTP floor server.
func startFloor(b testing.TB, journal bool) *agent {
	dir := b.TempDir()
	a := &agent{dir: dir, socket: filepath.Join(dir, "floor.sock"), exited: make(chan struct{}), stderr: &lockedBuf{}}
	a.cmd = exec.Command(os.Args[0], "-test.run=^$")
	a.cmd.Env = append(os.Environ(), floorEnv+"="+a.socket)
	if journal {
		a.cmd.Env = append(a.cmd.Env, floorJournalEnv+"="+filepath.Join(dir, "journal"))
	}
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	b.Cleanup(func() { _ = a.cmd.Process.Kill(); <-a.exited })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := dial(a.socket)
		if err == nil {
			c.Close()
			return a
		}
		select {
		case <-a.exited:
			b.Fatalf("floor server exited: %s", a.stderr)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("floor server not listening after 30s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkHTTPFloor: the same single-export load as BenchmarkAPIExport
// at 64 clients, against the HTTP floor (serveFloor) in its own process,
// bare and journaling.
func BenchmarkHTTPFloor(b *testing.B) {
	for _, journal := range []bool{false, true} {
		name := "clients=64"
		if journal {
			name = "journal/clients=64"
		}
		b.Run(name, func(b *testing.B) {
			a := startFloor(b, journal)
			run(b, a, 64, 1, "exports/s", func(c *conn, seq int64, _ int) error {
				_, err := c.post("/v1/exports", "application/json", exportBody(seq))
				return err
			})
		})
	}
}

// TestFloorConn runs the load generator's connection against the floor:
// answers are read whole and in order on one connection, and an answer
// other than 201 is an error that names it.
func TestFloorConn(t *testing.T) {
	a := startFloor(t, true)
	c, err := dial(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		out, err := c.post("/v1/exports", "application/json", exportBody(int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`"seq":%d,`, i); !strings.Contains(string(out), want) {
			t.Fatalf("answer %d: %s, want it to hold %s", i, out, want)
		}
	}
	bad, err := dial(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.nc.Close()
	if _, err := bad.post("/v1/exports", "application/json", exportBody(0)); err == nil {
		t.Fatal("post on a closed connection: no error")
	}
	// A wrong token: the floor answers 401, post reports it.
	c2, err := dial(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.token = "wrong"
	if _, err := c2.post("/v1/exports", "application/json", exportBody(0)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: err %v, want one naming 401", err)
	}
}
