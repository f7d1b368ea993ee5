package apibench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

const token = "bench-token-0123456789abcdef"

// agentLogEnv, when set, names a file the agent's stderr goes to instead
// of the benchmark's buffer (for profiling: GODEBUG=gctrace=1 in the
// benchmark's environment reaches the agent; EDGESEAL_CPUPROFILE and
// EDGESEAL_MEMPROFILE likewise, see cmd/edgeseal/agent.go).
const agentLogEnv = "EDGESEAL_APIBENCH_AGENT_LOG"

const benchPolicy = `version: 1
name: bench
schemas:
  record@1: record-1.json
workflows:
  - name: records
    schema: record@1
    classifications: [internal]
    retention: ops-2y
    destinations: [archive]
    principals: [bench]
    max_size: 65536
  - name: files
    media_types: [text/csv]
    classifications: [internal]
    retention: ops-2y
    destinations: [archive]
    principals: [bench]
    max_size: 1048576
`

const benchSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
 "required":["id","blob"],"additionalProperties":false,
 "properties":{"id":{"type":"string"},"blob":{"type":"string"}}}`

// agent is the one `edgeseal agent` of this process, shared by every
// benchmark invocation in it (bench/report runs each benchmark in its own
// process, so its peak RSS is that benchmark's).
type agent struct {
	dir, socket string
	dataDir     string
	cmd         *exec.Cmd
	exited      chan struct{}
	stderr      *lockedBuf
}

var (
	agentOnce sync.Once
	shared    *agent
	sharedErr error

	encOnce   sync.Once
	encShared *agent
	encErr    error
)

func TestMain(m *testing.M) {
	if socket := os.Getenv(floorEnv); socket != "" {
		fmt.Fprintln(os.Stderr, serveFloor(socket, os.Getenv(floorJournalEnv)))
		os.Exit(1)
	}
	code := m.Run()
	for _, a := range []*agent{shared, encShared} {
		if a != nil {
			a.stop()
			os.RemoveAll(a.dir)
		}
	}
	os.Exit(code)
}

// getAgent builds the binary and starts the agent, once per process.
func getAgent(b *testing.B) *agent {
	b.Helper()
	agentOnce.Do(func() { shared, sharedErr = startAgent("", false) })
	return ready(b, shared, sharedErr)
}

// getEncryptedAgent is getAgent for an agent that seals every payload to
// an archive content key (encryption.content_key), once per process.
func getEncryptedAgent(b *testing.B) *agent {
	b.Helper()
	encOnce.Do(func() { encShared, encErr = startAgent("", true) })
	return ready(b, encShared, encErr)
}

func ready(b *testing.B, a *agent, err error) *agent {
	b.Helper()
	if err != nil {
		if strings.Contains(err.Error(), "simulator: not built in") {
			testenv.Missing(b, "%v", err)
		}
		b.Fatal(err)
	}
	select {
	case <-a.exited:
		b.Fatalf("agent exited:\n%s", a.stderr)
	default:
	}
	return a
}

// encryptionConfig writes an archive key and a content key announcement
// signed by it into dir and returns the agent's encryption section.
func encryptionConfig(dir string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	ck, err := payloadcipher.GenerateKey()
	if err != nil {
		return "", err
	}
	an, err := archivesig.SignContentKey(&archivesig.ContentKeyAnnouncement{Origin: archive.DefaultName, Seq: 1, Time: wire.FormatTime(time.Now())},
		ck.Public(), archivesig.ArchiveKeyID(pub), priv)
	if err != nil {
		return "", err
	}
	keyFile, annFile := filepath.Join(dir, "archive.pub"), filepath.Join(dir, "content-key.json")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(annFile, an, 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("encryption:\n  content_key: %s\n  archive_key: %s\n", annFile, keyFile), nil
}

// startAgent builds the binary and starts an agent whose data_dir is
// dataDir (default: beside its config in a new temporary directory),
// sealing payloads to a content key when encrypt is set.
func startAgent(dataDir string, encrypt bool) (*agent, error) {
	dir, err := os.MkdirTemp("", "edgeseal-apibench-")
	if err != nil {
		return nil, err
	}
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	bin := filepath.Join(dir, "edgeseal")
	// go test and bench/report run the test binary in the package's
	// directory; the module root is two levels up.
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(wd, "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("module root not found from %s: %w", wd, err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/edgeseal")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build edgeseal: %v\n%s", err, out)
	}
	a := &agent{dir: dir, dataDir: dataDir, socket: filepath.Join(dir, "agent.sock"), exited: make(chan struct{}), stderr: &lockedBuf{}}
	files := map[string]string{
		"policy.yaml":   benchPolicy,
		"record-1.json": benchSchema,
		"agent.yaml": fmt.Sprintf(`site: bench
device: dev-1
data_dir: %s
tpm: simulator:sim
tpm_insecure_simulator: true
api:
  socket: %s
policy: policy.yaml
principals:
  - {name: bench, token_sha256: %q, roles: [exporter]}
log:
  level: warn
`, dataDir, a.socket, config.HashToken(token)),
	}
	if encrypt {
		enc, err := encryptionConfig(dir)
		if err != nil {
			return nil, err
		}
		files["agent.yaml"] += enc
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	// Only `tpm enroll` creates the device's keys.
	enroll := exec.Command(bin, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(dir, "sim"), "--state", filepath.Join(dataDir, "tpm"),
		"--site", "bench", "--device", "dev-1", "--out", filepath.Join(dir, "DEVICE.json"))
	if out, err := enroll.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tpm enroll: %v\n%s", err, out)
	}
	a.cmd = exec.Command(bin, "agent", "--config", filepath.Join(dir, "agent.yaml"))
	a.cmd.Stderr = a.stderr
	if path := os.Getenv(agentLogEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child has its own descriptor once started
		a.cmd.Stderr = f
	}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	c := client(a.socket, 1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-a.exited:
			return nil, fmt.Errorf("agent exited before ready:\n%s", a.stderr)
		default:
		}
		if c.Ready(context.Background()) == nil {
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			os.RemoveAll(a.dir)
			return nil, fmt.Errorf("agent not ready after 60s:\n%s", a.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *agent) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// usage is what the agent process has used so far.
type usage struct {
	user, sys time.Duration
	faults    int64 // minor page faults (no I/O): first touches of memory and of mapped file pages
}

// usage reads the agent's CPU time (user and system) and minor faults.
func (a *agent) usage() (usage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return usage{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return usage{}, fmt.Errorf("short /proc/%d/stat", a.cmd.Process.Pid)
	}
	minflt, err0 := strconv.ParseInt(f[7], 10, 64) // field 10
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		return usage{}, fmt.Errorf("bad /proc/%d/stat", a.cmd.Process.Pid)
	}
	const ticks = 100 // USER_HZ
	return usage{user: time.Duration(utime) * time.Second / ticks, sys: time.Duration(stime) * time.Second / ticks, faults: minflt}, nil
}

// peakRSS is the agent's VmHWM in bytes.
func (a *agent) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", a.cmd.Process.Pid)
}

// client is an API client over the unix socket keeping conns connections.
func client(socket string, conns int) *api.Client {
	c, err := api.NewClient(api.ClientOptions{Socket: socket, Token: token, Timeout: 60 * time.Second, MaxConns: conns})
	if err != nil {
		panic(err) // a socket path is always a valid option
	}
	return c
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
