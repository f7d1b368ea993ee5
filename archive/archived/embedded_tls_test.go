package archived_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestArchiveEmbeddedBrokerTLS runs the archive daemon with its embedded
// broker configured with mqtt.embedded.tls: the archive reaches its broker
// in process, device A's agent publisher with its client certificate gets
// its bundles receipted, and device B's certificate publishing as device
// A gets nothing through (the broker's ACL; the archive sees nothing).
func TestArchiveEmbeddedBrokerTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	devA, devB := pki.Issue(t, "site1/devA"), pki.Issue(t, "site1/devB")
	chainA, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Site: "site1", Device: "devA"})
	if err != nil {
		t.Fatal(err)
	}
	chainB, err := bundletest.NewChain(t.Context(), nil, 1, bundletest.Options{Site: "site1", Device: "devB"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := fmt.Sprintf("data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n    tls:\n      ca_file: %s\n      cert_file: %s\n      key_file: %s\n",
		pki.CAFile, pki.ServerCert, pki.ServerKey)
	cfg := e2etest.ArchiveConfig(t, dir, yaml)
	ar := e2etest.StartArchive(t, cfg)
	if !strings.HasPrefix(ar.B.URL(), "ssl://") || strings.Contains(ar.Logs.String(), "without authentication") {
		t.Fatalf("embedded broker %s\n%s", ar.B.URL(), ar.Logs.String())
	}
	for _, c := range []*bundletest.Chain{chainA, chainB} {
		e2etest.EnrollChain(t, ar.A, c)
	}
	brk := &mqtttest.Broker{URL: ar.B.URL()}

	// Device B's certificate as device A: refused by the broker.
	jb := e2etest.NewOutbox(t)
	rawB, _ := chainB.Bundles[0].Bytes()
	if err := jb.PutOutbox(t.Context(), "b-0001", rawB); err != nil {
		t.Fatal(err)
	}
	evil := startAgentPublisher(t, brk, pki, devB, "site1", "devA", jb, ar.A)
	deadline := time.Now().Add(20 * time.Second)
	for evil.p.Stats().LastError == "" && evil.p.Stats().BundlesSent == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the impostor never tried: %+v", evil.p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	evil.stop()
	if st := evil.p.Stats(); st.Delivered != 0 || st.Rejected != 0 || evil.replies() != 0 {
		t.Fatalf("the impostor got an answer: %+v", st)
	}

	// Device A: every bundle receipted.
	ja := e2etest.NewOutbox(t)
	for i, b := range chainA.Bundles {
		raw, _ := b.Bytes()
		if err := ja.PutOutbox(t.Context(), fmt.Sprintf("a-%04d", i+1), raw); err != nil {
			t.Fatal(err)
		}
	}
	agA := startAgentPublisher(t, brk, pki, devA, "site1", "devA", ja, ar.A)
	agA.waitDrained(t, len(chainA.Bundles))
	agA.stop()
	if rc, err := archivesig.VerifyReceipt(agA.receipt("a-0001"), ar.A.KeyID(), ar.A.PublicKey()); err != nil || rc.Device != "site1/devA" {
		t.Fatalf("device A's receipt: %+v %v", rc, err)
	}
	// Enrollment through the embedded broker: device A's own request is
	// answered; device B's certificate on A's topic is refused by the broker.
	ack, err := brokerEnroll(t, brk, pki, devA, "site1", "devA", chainA, ar.A, 20*time.Second)
	if err != nil || ack.Status != sync.EnrollApproved || ack.Device != "site1/devA" {
		t.Fatalf("device A's enrollment: %+v %v\n%s", ack, err, ar.Logs)
	}
	if _, err := brokerEnroll(t, brk, pki, devB, "site1", "devA", chainB, ar.A, 2*time.Second); err == nil {
		t.Fatal("device B's certificate enrolled on device A's topic")
	}
	if s := ar.A.Stats(); s.Accepted != uint64(len(chainA.Bundles)) || s.Refused != 0 || s.Alarms != 0 {
		t.Fatalf("archive: %+v\n%s", s, ar.Logs.String())
	}
	if strings.Contains(ar.Logs.String(), "ALERT") {
		t.Fatalf("the archive saw an impostor:\n%s", ar.Logs.String())
	}
	ar.Stop(t)
}
