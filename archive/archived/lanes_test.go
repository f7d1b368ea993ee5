package archived

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestLaneDefaultsFollow: the config's defaults of the lane bounds and
// replica waits are the subscriber's and the archive's own.
func TestLaneDefaultsFollow(t *testing.T) {
	if config.DefaultMaxLanes != sync.DefaultMaxLanes || config.DefaultMaxPending != sync.DefaultMaxPending ||
		config.DefaultMaxPendingBytes != sync.DefaultMaxPendingBytes {
		t.Errorf("config lane defaults %d %d %d, sync's %d %d %d", config.DefaultMaxLanes, config.DefaultMaxPending,
			config.DefaultMaxPendingBytes, sync.DefaultMaxLanes, sync.DefaultMaxPending, sync.DefaultMaxPendingBytes)
	}
	if config.DefaultHoldWait != archive.DefaultHoldWait || config.DefaultGapWait != archive.DefaultGapWait {
		t.Errorf("config waits %s %s, the archive's %s %s", config.DefaultHoldWait, config.DefaultGapWait, archive.DefaultHoldWait, archive.DefaultGapWait)
	}
}

// TestLaneKeysReachTheSubscriber: the waits of archive_state reach the
// archive's options, and mqtt.max_lanes 1 read from a config bounds the
// daemon's subscriber (built by withLanes, as Run builds it) on a real
// Mosquitto: while device a's bundle is held in Admit, device b's is
// not admitted, and it is once a's lane ends.
func TestLaneKeysReachTheSubscriber(t *testing.T) {
	cfg, err := config.Parse([]byte("mqtt:\n  max_lanes: 1\n  max_pending: 8\n  max_pending_bytes: 2097152\narchive_state:\n  hold_wait: 3s\n  gap_wait: 250ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := withWaits(cfg, archive.Options{}); o.HoldWait != 3*time.Second || o.GapWait != 250*time.Millisecond {
		t.Fatalf("archive options: hold %s, gap %s", o.HoldWait, o.GapWait)
	}
	brk := mqtttest.Start(t, nil)
	gate := make(chan struct{})
	admitted := make(chan string, 16)
	so := withLanes(cfg, sync.SubscriberOptions{
		Broker: brk.URL, ClientID: "archive-lanes", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		Admit: func(ctx context.Context, d sync.Delivery) func(context.Context) ([]byte, error) {
			admitted <- d.Device
			if d.Device == "a" {
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			return func(context.Context) ([]byte, error) { return nil, nil } // no reply
		},
	})
	if so.MaxLanes != 1 || so.MaxPending != 8 || so.MaxPendingBytes != 2<<20 {
		t.Fatalf("subscriber options %d %d %d", so.MaxLanes, so.MaxPending, so.MaxPendingBytes)
	}
	s, err := sync.NewSubscriber(so)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	defer func() { close(gateOnce(gate)); cancel(); <-done }()

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brk.URL).SetClientID("agents"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	send := func(device string, i int) {
		b := fmt.Appendf(nil, "bundle %s %d", device, i)
		for _, f := range sync.EncodeChunks(fmt.Sprintf("%012d", i), sha256.Sum256(b), b, 64<<10) {
			if tok := pub.Publish(sync.BundlesTopic("site1", device), 1, false, f); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	// a's bundle, again until the subscription is in place and it is admitted.
	first := time.After(20 * time.Second)
	for i := 0; ; i++ {
		send("a", i)
		select {
		case dev := <-admitted:
			if dev != "a" {
				t.Fatalf("admitted %s first", dev)
			}
		case <-time.After(200 * time.Millisecond):
			continue
		case <-first:
			t.Fatal("a's bundle never admitted")
		}
		break
	}
	send("b", 0)
	select {
	case dev := <-admitted:
		t.Fatalf("%s admitted while a's lane holds the only one (max_lanes 1)", dev)
	case <-time.After(500 * time.Millisecond):
	}
	if n := s.Stats().Lanes; n != 1 {
		t.Errorf("%d lanes, want 1", n)
	}
	close(gate)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case dev := <-admitted:
			if dev == "b" {
				return
			}
		case <-deadline:
			t.Fatal("b never admitted after a's lane ended")
		}
	}
}

// gateOnce returns a channel to close at the end: gate itself unless it
// is closed already.
func gateOnce(gate chan struct{}) chan struct{} {
	select {
	case <-gate:
		return make(chan struct{})
	default:
		return gate
	}
}

// TestLeasePoolBoundedByLanes: the chain-state store the daemon opens
// for archive_state mysql holds at most min(mqtt.max_lanes,
// mqtt.max_pending) leases at once: with max_lanes 2 a third device's
// lease waits until its deadline.
func TestLeasePoolBoundedByLanes(t *testing.T) {
	dir := t.TempDir()
	dsn := mariadbtest.Start(t).Database(t)
	if err := os.WriteFile(filepath.Join(dir, "state.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("data_dir: " + filepath.Join(dir, "data") + "\nmqtt:\n  max_lanes: 2\narchive_state:\n  engine: mysql\n  mysql_dsn_file: " + filepath.Join(dir, "state.dsn") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, _, err := openState(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 2 {
		l, err := st.Lock(t.Context(), fmt.Sprintf("site1/dev%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
	}
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if l, err := st.Lock(short, "site1/dev2"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			_ = l.Release()
		}
		t.Fatalf("a third lease with max_lanes 2: %v, want it to wait until its deadline", err)
	}
}
