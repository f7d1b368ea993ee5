package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// replicaGroup is the archives' shared subscription group (mqtt.group).
const replicaGroup = "archive"

// replicaRig is a real MariaDB (the archive log and the chain state, both
// engine mysql), a real Mosquitto, a real versitygw (one Object Lock
// bucket), several `edgeseal archive` processes sharing all three and
// the subscription group, and `edgeseal agent` processes, each its own
// device, delivering to them.
type replicaRig struct {
	t      *testing.T
	brk    *mqtttest.Broker
	db     *mariadbtest.Server
	gw     *s3test.Gateway
	bucket string
	akey   ed25519.PrivateKey // the replicas' one archive key
	pub    string             // its public key file, the agents' archive_key
	cfgs   []string           // each replica's config file
	reps   []*archiveProc     // each replica's running process
	// killed is what each replica's earlier (killed) processes logged.
	killed []strings.Builder
	agents []*agentDir
	procs  []*agentProc
}

// newReplicaRig starts MariaDB, versitygw and Mosquitto, writes the
// configs of n replicas (each its own data_dir, one key) and of agents
// agents (devices e2e-site/dev-1..), enrolls and approves each device once,
// at one replica (the registry is in the shared database), and starts
// nothing else.
func newReplicaRig(t *testing.T, n, agents int) *replicaRig {
	t.Helper()
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	r := &replicaRig{t: t, killed: make([]strings.Builder, n)}
	r.db = mariadbtest.Start(t)
	r.gw = s3test.Start(t)
	r.bucket = r.gw.Bucket(t)
	r.brk = mqtttest.Start(t, nil)
	shared := t.TempDir()
	logDSN := writeSecret(t, shared, "archive-log.dsn", r.db.Database(t))
	stateDSN := writeSecret(t, shared, "archive-state.dsn", r.db.Database(t))
	indexDSN := writeSecret(t, shared, "archive-index.dsn", r.db.Database(t))
	creds := r.gw.WriteCredentials(t)
	for i := range n {
		dir := t.TempDir()
		if i == 0 {
			var keyFile string
			keyFile, r.akey = archiveKeyOf(t, dir)
			r.pub = keyFile + ".pub"
		} else {
			data := filepath.Join(dir, "data")
			if err := os.MkdirAll(data, 0o700); err != nil {
				t.Fatal(err)
			}
			src := filepath.Dir(r.pub)
			for _, f := range []string{"archive.key", "archive.key.pub"} {
				b, err := os.ReadFile(filepath.Join(src, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(data, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		cfg := fmt.Sprintf(`data_dir: data
retention: 48h
mqtt:
  broker: %s
  client_id: archive-%d
  group: %s
archive_log:
  engine: mysql
  mysql_dsn_file: %s
archive_state:
  engine: mysql
  mysql_dsn_file: %s
archive_index:
  engine: mysql
  mysql_dsn_file: %s
objects:
  backend: s3
  s3:
    endpoint: %s
    bucket: %s
    prefix: bundles/
    credentials_file: %s
    tls:
      ca_file: %s
log:
  format: json
metrics:
  listen: 127.0.0.1:0
`, r.brk.URL, i+1, replicaGroup, logDSN, stateDSN, indexDSN, r.gw.Endpoint, r.bucket, creds, r.gw.CAFile)
		f := filepath.Join(dir, "archive.yaml")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		r.cfgs = append(r.cfgs, f)
	}
	for k := range agents {
		r.agents = append(r.agents, r.newAgent(k+1))
	}
	return r
}

// writeSecret writes a one-line 0600 file (a DSN) and returns its path.
func writeSecret(t *testing.T, dir, name, line string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newAgent writes the config of device e2e-site/dev-k, enrolls its TPM
// keys and enrolls and approves it at one replica (k-th, in turn): the
// others see it in the shared registry.
func (r *replicaRig) newAgent(k int) *agentDir {
	t := r.t
	t.Helper()
	a := newAgentDir(t, agentOpts{sealEvery: 100, sealInterval: replicaSeal, maxBody: "64 KiB"})
	dev := fmt.Sprintf("dev-%d", k)
	a.device = "e2e-site/" + dev
	cfg := filepath.Join(a.dir, "agent.yaml")
	text := fileText(t, cfg)
	if !strings.Contains(text, "\ndevice: dev-1\n") {
		t.Fatalf("agent config without device dev-1:\n%s", text)
	}
	text = strings.Replace(text, "\ndevice: dev-1\n", "\ndevice: "+dev+"\n", 1)
	text += fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  resend_after: 2s\n  max_message: %d\n", r.brk.URL, r.pub, replicaMaxMessage)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	req := filepath.Join(t.TempDir(), "DEVICE.json")
	if o, code := bundlesCLI(t, "tpm", "enroll", "--insecure-simulator", "--tpm", "simulator:"+filepath.Join(a.dir, "sim"),
		"--state", filepath.Join(a.dir, "data", "tpm"), "--site", "e2e-site", "--device", dev, "--out", req); code != 0 {
		t.Fatalf("tpm enroll %s: exit %d\n%s", dev, code, o)
	}
	key := keyIDOf(t, req)
	c := r.cfgs[(k-1)%len(r.cfgs)]
	if out, code := bundlesCLI(t, "archive", "enroll-file", req, "--config", c); code != 0 {
		t.Fatalf("archive enroll-file %s: exit %d\n%s", dev, code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", a.device, "--key", key, "--no-activation", "--by", "test", "--config", c); code != 0 {
		t.Fatalf("archive devices approve %s: exit %d\n%s", dev, code, out)
	}
	return a
}

// startReplica starts replica i (again) and waits until it is ready.
func (r *replicaRig) startReplica(i int) {
	r.t.Helper()
	p := startArchiveProc(r.t, r.cfgs[i])
	if i < len(r.reps) {
		r.reps[i] = p
	} else {
		r.reps = append(r.reps, p)
	}
}

// killReplica SIGKILLs replica i and keeps what it logged.
func (r *replicaRig) killReplica(i int) {
	r.reps[i].kill()
	r.killed[i].WriteString(r.reps[i].stderr.String())
}

// replicaLogs is everything replica i logged, killed processes included.
func (r *replicaRig) replicaLogs(i int) string {
	return r.killed[i].String() + r.reps[i].stderr.String()
}

// startAgents starts every agent and waits until each is ready.
func (r *replicaRig) startAgents() {
	r.t.Helper()
	for _, a := range r.agents {
		r.procs = append(r.procs, a.start(r.t, true))
	}
}

// drained waits until agent k's outbox is empty and its last seal covers
// seq maxSeq, or fails after deadline.
func (r *replicaRig) drained(k int, maxSeq uint64, deadline time.Time) {
	t := r.t
	t.Helper()
	sock := unixClient(r.agents[k].socket)
	defer sock.CloseIdleConnections()
	var st agent.Status
	for {
		rep, err := do(t, sock, "GET", "http://agent/v1/status", tokAuditor, "", nil)
		if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 && st.LastSeal != nil && st.LastSeal.Size > maxSeq {
			return
		}
		if time.Now().After(deadline) {
			r.saveLogs()
			t.Fatalf("agent %s: outbox not drained after the last kill: %d %s %v\nagent:\n%s\nreplica 1:\n%s", r.agents[k].device, rep.status, rep.body, err,
				tail(r.procs[k].stderr.String()), tail(r.replicaLogs(0)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// saveLogs writes every daemon's log into EDGESEAL_REPLICA_LOGS, when
// set (a directory).
func (r *replicaRig) saveLogs() {
	d := os.Getenv("EDGESEAL_REPLICA_LOGS")
	if d == "" {
		return
	}
	for i := range r.reps {
		_ = os.WriteFile(filepath.Join(d, fmt.Sprintf("archive-%d.log", i+1)), []byte(r.replicaLogs(i)), 0o644)
	}
	for k, p := range r.procs {
		_ = os.WriteFile(filepath.Join(d, fmt.Sprintf("agent-%d.log", k+1)), []byte(p.stderr.String()), 0o644)
	}
	_ = os.WriteFile(filepath.Join(d, "mosquitto.log"), []byte(r.brk.Log()), 0o644)
	_ = os.WriteFile(filepath.Join(d, "mariadbd.log"), []byte(r.db.Log()), 0o644)
}
