package archived_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// The packaged archive config (packaging/nfpm/etc/archive.yaml).
var shippedArchiveConf = filepath.Join("..", "..", "packaging", "nfpm", "etc", "archive.yaml")

// TestMosquittoShareJamming: with the packaged Mosquitto config and ACL
// and the packaged archive config (only addresses and paths substituted),
// a client with a valid device certificate that joins the archive's
// shared subscription group ($share/archive/...) for bundles and
// enrollment requests receives nothing and takes nothing away: the
// archive gets each of 20 bundles (some of several frames) the first
// time they are sent, and every enrollment request.
func TestMosquittoShareJamming(t *testing.T) {
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	pki := mqtttest.NewPKI(t)
	archiveCert := pki.Issue(t, "edgeseal-archive")
	devA := pki.Issue(t, "site1/devA")
	devB := pki.Issue(t, "site1/devB")
	const n = 20
	chain, err := bundletest.NewChain(t.Context(), nil, n, bundletest.Options{Site: "site1", Device: "devA"})
	if err != nil {
		t.Fatal(err)
	}
	brk := mqtttest.StartConfig(t, shippedConf, map[string]string{
		"acl_file": absPath(t, shippedACL), "cafile": pki.CAFile, "certfile": pki.ServerCert, "keyfile": pki.ServerKey,
	})
	shareJamming(t, brk, pki, archiveCert, devA, devB, chain, "")
	if !strings.Contains(brk.Config(), "acl_file "+absPath(t, shippedACL)) {
		t.Fatal("the broker ran without the packaged ACL")
	}
}

// shareJamming runs the archive daemon with the packaged config (group
// its mqtt.group) on brk, a client with device B's certificate in the
// shared subscription group "archive", and device A delivering 20
// bundles and 4 enrollment requests: each must reach the archive the
// first time, none the thief.
func shareJamming(t *testing.T, brk *mqtttest.Broker, pki *mqtttest.PKI, archiveCert, devA, devB *mqtttest.ClientCert, chain *bundletest.Chain, group string) {
	t.Helper()
	const n = 20
	ar := startPackagedArchive(t, brk, pki, archiveCert, chain, group)

	// Device B's certificate joins the group "archive" for bundles and
	// enrollment requests, as the archive did with the packaged config.
	var (
		mu     gosync.Mutex
		stolen []string
	)
	thief, err := sync.NewSubscriber(sync.SubscriberOptions{
		Broker: brk.URL, ClientID: "thief", TLS: pki.TLS(devB), Group: "archive",
		Handler: func(_ context.Context, d sync.Delivery) ([]byte, error) {
			mu.Lock()
			stolen = append(stolen, d.Topic)
			mu.Unlock()
			return nil, nil
		},
		EnrollHandler: func(_ context.Context, site, device string, _ []byte) ([]byte, error) {
			mu.Lock()
			stolen = append(stolen, site+"/"+device+" enroll")
			mu.Unlock()
			return nil, nil
		},
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tctx, stopThief := context.WithCancel(t.Context())
	thiefDone := make(chan error, 1)
	go func() { thiefDone <- thief.Start(tctx) }()
	t.Cleanup(func() { stopThief(); <-thiefDone })
	deadline := time.Now().Add(20 * time.Second)
	for !thief.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("the thief never subscribed: %+v", thief.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Device A sends its 20 bundles, cut into frames of at most
	// sync.MinMessage bytes; nothing is resent on a timer during the test.
	out, err := store.Open(t.Context(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	multi := 0
	for i, b := range chain.Bundles {
		raw, _ := b.Bytes()
		if len(raw) > sync.MinMessage {
			multi++
		}
		if err := out.PutOutbox(t.Context(), fmt.Sprintf("a-%04d", i+1), raw); err != nil {
			t.Fatal(err)
		}
	}
	if multi == 0 {
		t.Fatal("no bundle takes more than one frame")
	}
	tc, err := sync.ClientTLS(pki.CAFile, devA.CertFile, devA.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: brk.URL, Site: "site1", Device: "devA", TLS: tc, Outbox: out,
		ArchiveKey: ar.A.PublicKey(), ArchiveKeyID: ar.A.KeyID(),
		MaxMessage: sync.MinMessage, Window: n, ResendAfter: time.Hour, RetryHeld: -1,
		Tick: 100 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopPub := context.WithCancel(t.Context())
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.Start(pctx) }()
	var stopOnce gosync.Once
	stopPublisher := func() { stopOnce.Do(func() { stopPub(); <-pubDone }) }
	t.Cleanup(stopPublisher)
	deadline = time.Now().Add(60 * time.Second)
	for pub.Stats().Delivered < n {
		if time.Now().After(deadline) {
			t.Fatalf("the archive answered %d of %d bundles: publisher %+v, archive %+v, the thief got %d messages",
				pub.Stats().Delivered, n, pub.Stats(), ar.A.Stats(), len(stolen))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := pub.Stats(); st.Resent != 0 || st.Rejected != 0 || st.BundlesSent != n || st.FramesSent <= n {
		t.Fatalf("bundles lost on the way (resent or refused for a gap), or not multi-frame: %+v", st)
	}
	if st := ar.A.Stats(); st.Accepted != n || st.Refused != 0 || st.Duplicates != 0 {
		t.Fatalf("archive: %+v, want %d accepted the first time", st, n)
	}

	// Enrollment requests: each of 4 answered (none taken by the thief).
	// The publisher stops first: with use_username_as_clientid both would
	// have the client id site1/devA and take the session from each other.
	stopPublisher()
	for i := range 4 {
		ack, err := brokerEnroll(t, brk, pki, devA, "site1", "devA", chain, ar.A, 20*time.Second)
		if err != nil || ack.Status != sync.EnrollApproved {
			t.Fatalf("enrollment request %d: %+v %v", i+1, ack, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(stolen) != 0 || thief.Stats().Handled != 0 || thief.Stats().Enrollments != 0 {
		t.Fatalf("the device certificate in the archive's group received %v", stolen)
	}
	ar.Stop(t)
}

// startPackagedArchive runs the archive daemon with the packaged config,
// its broker address, certificate paths and directories substituted, and
// enrolls and approves the chain's device.
func startPackagedArchive(t *testing.T, brk *mqtttest.Broker, pki *mqtttest.PKI, cert *mqtttest.ClientCert, chain *bundletest.Chain, group string) *e2etest.Archive {
	t.Helper()
	raw, err := os.ReadFile(shippedArchiveConf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.NewReplacer(
		"ssl://localhost:8883", brk.URL,
		"/etc/edgeseal/tls/ca.crt", pki.CAFile,
		"/etc/edgeseal/tls/archive-mqtt.crt", cert.CertFile,
		"/etc/edgeseal/tls/archive-mqtt.key", cert.KeyFile,
		"/var/lib/edgeseal-archive", filepath.Join(dir, "data"),
	).Replace(string(raw))
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.Broker != brk.URL || cfg.MQTT.TLS.CertFile != cert.CertFile {
		t.Fatalf("packaged config not adapted: %+v", cfg.MQTT)
	}
	cfg.MQTT.Group = group
	ar := e2etest.StartArchive(t, cfg)
	e2etest.EnrollChain(t, ar.A, chain)
	return ar
}
