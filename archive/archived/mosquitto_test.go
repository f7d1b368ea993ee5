package archived_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// The shipped production broker configuration (packaging/mosquitto).
var (
	shippedConf = filepath.Join("..", "..", "packaging", "mosquitto", "edgeseal.conf")
	shippedACL  = filepath.Join("..", "..", "packaging", "mosquitto", "edgeseal.acl")
)

// TestMosquittoBroker runs the archive daemon and device agents' publishers
// against a real Mosquitto started from packaging/mosquitto (only ports,
// paths and the test PKI substituted), everyone with a client certificate
// named as the packaging documents: bundles in, receipts back, each bundle
// verified and stored once; a device publishing on another device's topic
// is dropped by the broker's ACL and, with the ACL off, refused by the
// archive (archive.topic), quarantined and alerted.
func TestMosquittoBroker(t *testing.T) {
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	pki := mqtttest.NewPKI(t)
	certs := brokerCerts{
		pki:     pki,
		archive: pki.Issue(t, "edgeseal-archive"),
		devA:    pki.Issue(t, "site1/devA"),
		devB:    pki.Issue(t, "site1/devB"),
	}
	chainA, err := bundletest.NewChain(t.Context(), nil, 4, bundletest.Options{Site: "site1", Device: "devA"})
	if err != nil {
		t.Fatal(err)
	}
	chainB, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Site: "site1", Device: "devB"})
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles := map[string]string{"cafile": pki.CAFile, "certfile": pki.ServerCert, "keyfile": pki.ServerKey}

	t.Run("acl", func(t *testing.T) {
		set := map[string]string{"acl_file": absPath(t, shippedACL)}
		for k, v := range tlsFiles {
			set[k] = v
		}
		brk := mqtttest.StartConfig(t, shippedConf, set)
		ar := startBrokerArchive(t, brk, certs.archive, certs.pki, chainA, chainB)

		// Device A: its outbox drains, each bundle comes back receipted.
		ja := e2etest.NewOutbox(t)
		raws := map[string][]byte{}
		for i, b := range chainA.Bundles {
			raw, _ := b.Bytes()
			id := fmt.Sprintf("a-%04d", i+1)
			raws[id] = raw
			if err := ja.PutOutbox(t.Context(), id, raw); err != nil {
				t.Fatal(err)
			}
		}
		// Device B's certificate subscribed to A's receipts (the broker
		// may grant the SUBSCRIBE; the ACL's read check drops every
		// message): an unmatched receipt would count as a bad reply.
		spy := startSpy(t, brk, certs, ar.A)
		agA := startAgentPublisher(t, brk, certs.pki, certs.devA, "site1", "devA", ja, ar.A)
		agA.waitDrained(t, len(raws))
		agA.stop()
		time.Sleep(200 * time.Millisecond)
		spy.stop()
		if st := spy.p.Stats(); st.BadReplies != 0 || spy.replies() != 0 {
			t.Fatalf("device B's certificate read device A's receipts: %+v", st)
		}
		for id, raw := range raws {
			rc, err := archivesig.VerifyReceipt(agA.receipt(id), ar.A.KeyID(), ar.A.PublicKey())
			if err != nil {
				t.Fatalf("receipt %s: %v", id, err)
			}
			digest := sha256.Sum256(raw)
			if rc.Device != "site1/devA" || rc.BundleDigest != wire.FormatHash(digest) {
				t.Fatalf("receipt %s: device %q digest %s", id, rc.Device, rc.BundleDigest)
			}
			stored, err := ar.A.Objects().Get(t.Context(), digest)
			if err != nil || !bytes.Equal(stored, raw) {
				t.Fatalf("bundle %s in the object store: %v", id, err)
			}
		}
		if st := ar.A.Stats(); st.Accepted != 4 || st.Refused != 0 || ar.A.LogSize() != 4 {
			t.Fatalf("archive after device A: %+v, log %d", st, ar.A.LogSize())
		}

		// The agent restarted without its receipts and sends a bundle
		// again: a receipt of the same log entry (the stored one, or a
		// fresh one for a first receipt, which has no witness proof),
		// nothing stored twice.
		if err := ja.PutOutbox(t.Context(), "a-0001", raws["a-0001"]); err != nil {
			t.Fatal(err)
		}
		first := agA.receipt("a-0001")
		agA2 := startAgentPublisher(t, brk, certs.pki, certs.devA, "site1", "devA", ja, ar.A)
		agA2.waitDrained(t, 1)
		agA2.stop()
		if again := agA2.receipt("a-0001"); !bytes.Equal(again, first) {
			r1, err1 := archivesig.VerifyReceipt(first, ar.A.KeyID(), ar.A.PublicKey())
			r2, err2 := archivesig.VerifyReceipt(again, ar.A.KeyID(), ar.A.PublicKey())
			if err1 != nil || err2 != nil || r1.WitnessFrom != 0 || r2.LogIndex != r1.LogIndex || r2.BundleDigest != r1.BundleDigest {
				t.Fatalf("a bundle sent twice got a receipt of another entry (%v, %v)", err1, err2)
			}
		}
		if st := ar.A.Stats(); st.Accepted != 4 || st.Duplicates != 1 || ar.A.LogSize() != 4 {
			t.Fatalf("archive after the resend: %+v, log %d", st, ar.A.LogSize())
		}

		// Device B's certificate publishing on device A's bundles topic:
		// mosquitto 2.0 drops the QoS 1 PUBLISH and acknowledges it
		// (2.0.11 puts reason 0x87 in the MQTT 3.1.1 PUBACK, on which paho
		// drops the connection; the impostor reconnects and tries again).
		jb := e2etest.NewOutbox(t)
		rawB, _ := chainB.Bundles[0].Bytes()
		if err := jb.PutOutbox(t.Context(), "b-0001", rawB); err != nil {
			t.Fatal(err)
		}
		evil := startAgentPublisher(t, brk, certs.pki, certs.devB, "site1", "devA", jb, ar.A)
		deadline := time.Now().Add(15 * time.Second)
		for evil.p.Stats().BundlesSent == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the impostor never published: %+v", evil.p.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Second) // PUBACK, and time for a delivery that must not happen
		evil.stop()
		if st := evil.p.Stats(); st.Delivered != 0 || st.Rejected != 0 || evil.replies() != 0 {
			t.Fatalf("the impostor got an answer: %+v", st)
		}
		// Barrier: device B's own bundle on its own topic, sent after the
		// broker acknowledged the impostor's. Had the broker forwarded the
		// impostor's message, the archive would have refused it first.
		agB := startAgentPublisher(t, brk, certs.pki, certs.devB, "site1", "devB", jb, ar.A)
		agB.waitDrained(t, 1)
		agB.stop()
		if rc, err := archivesig.VerifyReceipt(agB.receipt("b-0001"), ar.A.KeyID(), ar.A.PublicKey()); err != nil || rc.Device != "site1/devB" {
			t.Fatalf("device B's receipt: %+v, %v", rc, err)
		}
		if st := ar.A.Stats(); st.Accepted != 5 || st.Refused != 0 || st.Alarms != 0 {
			t.Fatalf("archive saw the impostor's bundle: %+v", st)
		}
		if q, _ := os.ReadDir(filepath.Join(ar.DataDir, "quarantine")); len(q) != 0 {
			t.Fatalf("quarantine not empty: %v", q)
		}
		if logs := ar.Logs.String(); strings.Contains(logs, "ALERT") {
			t.Fatalf("archive alerted:\n%s", logs)
		}

		// Enrollment: device A's certificate may publish its own enroll
		// topic and read its answers; device B's may not publish on A's
		// (dropped by the broker: no answer, nothing at the archive).
		ack, err := brokerEnroll(t, brk, certs.pki, certs.devA, "site1", "devA", chainA, ar.A, 20*time.Second)
		if err != nil || ack.Status != sync.EnrollApproved || ack.Device != "site1/devA" {
			t.Fatalf("device A's enrollment: %+v %v\n%s", ack, err, ar.Logs)
		}
		if _, err := brokerEnroll(t, brk, certs.pki, certs.devB, "site1", "devA", chainB, ar.A, 2*time.Second); err == nil {
			t.Fatal("device B's certificate enrolled on device A's topic")
		}
		time.Sleep(500 * time.Millisecond)
		if logs := ar.Logs.String(); strings.Contains(logs, "ALERT") {
			t.Fatalf("the archive saw the impostor's enrollment:\n%s", logs)
		}

		// Device alerts: device B's certificate publishing on device A's
		// alert topic is dropped by the broker; A's own alert, sent after
		// it, and B's own reach the archive.
		evilAlert := startAgentPublisher(t, brk, certs.pki, certs.devB, "site1", "devA", e2etest.NewOutbox(t), ar.A)
		if err := evilAlert.p.Alert(sync.NewDeviceAlert("", "", "signer.unknown", time.Now(), -1, "forged")); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(20 * time.Second)
		for st := evilAlert.p.AlertStats(); st.Sent+st.Dropped == 0 && !strings.Contains(brk.Log(), "Denied PUBLISH"); st = evilAlert.p.AlertStats() {
			if time.Now().After(deadline) {
				t.Fatalf("the impostor's alert never went out: %+v\n%s", st, brk.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("the impostor's alert: %+v", evilAlert.p.AlertStats())
		evilAlert.stop()
		for _, dev := range []struct {
			cert   *mqtttest.ClientCert
			device string
		}{{certs.devA, "devA"}, {certs.devB, "devB"}} {
			ag := startAgentPublisher(t, brk, certs.pki, dev.cert, "site1", dev.device, e2etest.NewOutbox(t), ar.A)
			if err := ag.p.Alert(sync.NewDeviceAlert("", "", "outbox.quota", time.Now(), -1, "own")); err != nil {
				t.Fatal(err)
			}
			deadline = time.Now().Add(20 * time.Second)
			for len(ar.A.DeviceAlerts("site1/" + dev.device)["site1/"+dev.device]) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s's own alert did not reach the archive: %+v", dev.device, ag.p.AlertStats())
				}
				time.Sleep(20 * time.Millisecond)
			}
			ag.stop()
		}
		for dev, als := range ar.A.DeviceAlerts("") {
			if len(als) != 1 || als[0].Kind != "outbox.quota" {
				t.Fatalf("the archive holds %s's alerts %+v: the impostor's got through", dev, als)
			}
		}
		if c := ar.A.DeviceAlertCounts(); c["signer.unknown"] != 0 || c["outbox.quota"] != 2 {
			t.Fatalf("device alert counts %v", c)
		}
		ar.Stop(t)
	})

	t.Run("no-acl", func(t *testing.T) {
		set := map[string]string{"acl_file": ""} // the shipped config without its ACL
		for k, v := range tlsFiles {
			set[k] = v
		}
		brk := mqtttest.StartConfig(t, shippedConf, set)
		if strings.Contains("\n"+brk.Config(), "\nacl_file") { // a line, not the comments naming it
			t.Fatal("acl_file still configured")
		}
		ar := startBrokerArchive(t, brk, certs.archive, certs.pki, chainA, chainB)

		// The broker now lets device B's certificate publish on A's topic;
		// the archive refuses: the topic's device is not the signer.
		jb := e2etest.NewOutbox(t)
		rawB, _ := chainB.Bundles[1].Bytes()
		if err := jb.PutOutbox(t.Context(), "b-0002", rawB); err != nil {
			t.Fatal(err)
		}
		evil := startAgentPublisher(t, brk, certs.pki, certs.devB, "site1", "devA", jb, ar.A)
		rej := evil.waitRejection(t, "b-0002")
		evil.stop()
		if _, err := sync.VerifyRejection(rej.raw, ar.A.KeyID(), ar.A.PublicKey()); err != nil {
			t.Fatalf("rejection: %v", err)
		}
		digest := sha256.Sum256(rawB)
		if !slices.Contains(rej.r.Checks, archive.CheckTopic) || rej.r.Device != "site1/devA" || rej.r.BundleDigest != wire.FormatHash(digest) {
			t.Fatalf("rejection %+v, want check %s for site1/devA", rej.r, archive.CheckTopic)
		}
		if st := ar.A.Stats(); st.Accepted != 0 || st.Refused != 1 || ar.A.LogSize() != 0 {
			t.Fatalf("archive: %+v, log %d", st, ar.A.LogSize())
		}
		if _, err := ar.A.Objects().Get(t.Context(), digest); err == nil {
			t.Fatal("the refused bundle is in the object store")
		}
		q, err := os.ReadFile(filepath.Join(ar.DataDir, "quarantine", hex.EncodeToString(digest[:])+".tar"))
		if err != nil || !bytes.Equal(q, rawB) {
			t.Fatalf("quarantined bytes: %v", err)
		}
		logs := ar.Logs.String()
		if !strings.Contains(logs, "ALERT "+archive.KindRejected) || !strings.Contains(logs, archive.CheckTopic) {
			t.Fatalf("no alert with %s:\n%s", archive.CheckTopic, logs)
		}
		if strings.Contains(logs, "alert not published") {
			t.Fatalf("alert not published on MQTT:\n%s", logs)
		}
		// The archive keeps serving: device A's bundles go through. Without
		// the ACL, device B's certificate reads A's receipts too (the
		// control for the acl subtest's check).
		ja := e2etest.NewOutbox(t)
		for i, b := range chainA.Bundles[:2] {
			raw, _ := b.Bytes()
			if err := ja.PutOutbox(t.Context(), fmt.Sprintf("a-%04d", i+1), raw); err != nil {
				t.Fatal(err)
			}
		}
		spy := startSpy(t, brk, certs, ar.A)
		agA := startAgentPublisher(t, brk, certs.pki, certs.devA, "site1", "devA", ja, ar.A)
		agA.waitDrained(t, 2)
		agA.stop()
		deadline := time.Now().Add(10 * time.Second)
		for spy.p.Stats().BadReplies == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("without the ACL the spy got no receipt: %+v", spy.p.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		spy.stop()
		if st := ar.A.Stats(); st.Accepted != 2 || st.Refused != 1 {
			t.Fatalf("archive: %+v", st)
		}
		// Without the ACL an enrollment on another device's topic reaches
		// the archive, which refuses it: the topic's device is not the
		// request's.
		ack, err := brokerEnroll(t, brk, certs.pki, certs.devB, "site1", "devA", chainB, ar.A, 20*time.Second)
		if err != nil || ack.Status != sync.EnrollRefused || !strings.Contains(ack.Reason, "site1/devB") {
			t.Fatalf("impostor's enrollment without the ACL: %+v %v", ack, err)
		}
		if !strings.Contains(ar.Logs.String(), "ALERT "+archive.KindEnrollmentRefused) {
			t.Fatalf("no alert for the impostor's enrollment:\n%s", ar.Logs)
		}
		ar.Stop(t)
	})
}

type brokerCerts struct {
	pki                 *mqtttest.PKI
	archive, devA, devB *mqtttest.ClientCert
}

func absPath(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startBrokerArchive runs the archive daemon (archived.Run) against the
// external broker with its client certificate, and enrolls and approves
// the chains' devices.
func startBrokerArchive(t *testing.T, brk *mqtttest.Broker, cert *mqtttest.ClientCert, pki *mqtttest.PKI, chains ...*bundletest.Chain) *e2etest.Archive {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`data_dir: data
mqtt:
  broker: %s
  tls:
    ca_file: %s
    cert_file: %s
    key_file: %s
  client_id: edgeseal-archive
`, brk.URL, pki.CAFile, cert.CertFile, cert.KeyFile)
	cfg := e2etest.ArchiveConfig(t, dir, yaml)
	ar := e2etest.StartArchive(t, cfg)
	for _, c := range chains {
		e2etest.EnrollChain(t, ar.A, c)
	}
	return ar
}

type gotRejection struct {
	r   *sync.Rejection
	raw []byte
}

// agentPublisher is the agent's sync publisher with the TLS of its
// config's sync.ca/cert/key (sync.ClientTLS), recording what comes back.
type agentPublisher struct {
	p      *sync.Publisher
	out    *store.Journal
	cancel context.CancelFunc
	done   chan error

	mu       gosync.Mutex
	receipts map[string][]byte
	rejected map[string]gotRejection
}

func startAgentPublisher(t *testing.T, brk *mqtttest.Broker, pki *mqtttest.PKI, cert *mqtttest.ClientCert, site, device string, out *store.Journal, a *archive.Archive) *agentPublisher {
	t.Helper()
	tc, err := sync.ClientTLS(pki.CAFile, cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ag := &agentPublisher{out: out, done: make(chan error, 1), receipts: map[string][]byte{}, rejected: map[string]gotRejection{}}
	ag.p, err = sync.NewPublisher(sync.PublisherOptions{
		Broker: brk.URL, Site: site, Device: device, TLS: tc,
		Outbox: out, ArchiveKey: a.PublicKey(), ArchiveKeyID: a.KeyID(),
		Tick: 100 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
		OnReceipt: func(_ context.Context, id string, receipt []byte) error {
			ag.mu.Lock()
			ag.receipts[id] = bytes.Clone(receipt)
			ag.mu.Unlock()
			return nil
		},
		OnRejection: func(_ context.Context, id string, rej *sync.Rejection, raw []byte) {
			ag.mu.Lock()
			ag.rejected[id] = gotRejection{rej, bytes.Clone(raw)}
			ag.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ag.cancel = cancel
	go func() { ag.done <- ag.p.Start(ctx) }()
	t.Cleanup(ag.stop)
	return ag
}

// startSpy connects with device B's certificate as device A, with an
// empty outbox: it subscribes to A's receipts and publishes nothing.
func startSpy(t *testing.T, brk *mqtttest.Broker, certs brokerCerts, a *archive.Archive) *agentPublisher {
	t.Helper()
	spy := startAgentPublisher(t, brk, certs.pki, certs.devB, "site1", "devA", e2etest.NewOutbox(t), a)
	deadline := time.Now().Add(15 * time.Second)
	for !spy.p.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("spy not connected: %+v", spy.p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return spy
}

// brokerEnroll sends chain's trust as an enrollment request with cert as
// device site/device, through the broker (TLS as the agent does it).
func brokerEnroll(t *testing.T, brk *mqtttest.Broker, pki *mqtttest.PKI, cert *mqtttest.ClientCert, site, device string, chain *bundletest.Chain, a *archive.Archive, wait time.Duration) (*sync.EnrollAck, error) {
	t.Helper()
	tc, err := sync.ClientTLS(pki.CAFile, cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	req, err := chain.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ack, _, err := sync.Enroll(t.Context(), sync.EnrollOptions{Broker: brk.URL, Site: site, Device: device, TLS: tc,
		ArchiveKey: a.PublicKey(), ArchiveKeyID: a.KeyID(), Request: req, Timeout: wait})
	return ack, err
}

func (ag *agentPublisher) stop() {
	ag.cancel()
	if err, ok := <-ag.done; ok {
		_ = err
		close(ag.done)
	}
}

func (ag *agentPublisher) receipt(id string) []byte {
	ag.mu.Lock()
	defer ag.mu.Unlock()
	return ag.receipts[id]
}

func (ag *agentPublisher) replies() int {
	ag.mu.Lock()
	defer ag.mu.Unlock()
	return len(ag.receipts) + len(ag.rejected)
}

// waitDrained waits until n receipts arrived and the outbox is empty.
func (ag *agentPublisher) waitDrained(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := 0
		if err := ag.out.Outbox(t.Context(), func(string, []byte) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
		ag.mu.Lock()
		got := len(ag.receipts)
		ag.mu.Unlock()
		if left == 0 && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d left, %d receipts; publisher %+v", left, got, ag.p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ag *agentPublisher) waitRejection(t *testing.T, id string) gotRejection {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ag.mu.Lock()
		r, ok := ag.rejected[id]
		ag.mu.Unlock()
		if ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rejection for %s; publisher %+v", id, ag.p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
