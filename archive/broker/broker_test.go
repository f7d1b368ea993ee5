package broker

import (
	"errors"
	"strings"
	"testing"
)

// TestStartRefusesOpenListen: without TLS, a listen address that is not
// loopback is refused with an error naming the address and the remedy;
// loopback addresses start.
func TestStartRefusesOpenListen(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:1883", "example.net:1883"} {
		b, err := Start(t.Context(), Options{Listen: listen})
		var le *ListenError
		if !errors.As(err, &le) || le.Listen != listen || !strings.Contains(err.Error(), "TLS") || !strings.Contains(err.Error(), "loopback") {
			if b != nil {
				b.Close()
			}
			t.Fatalf("listen %s without TLS: %v", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:0", "localhost:0"} {
		b, err := Start(t.Context(), Options{Listen: listen})
		if err != nil {
			t.Fatalf("listen %s: %v", listen, err)
		}
		if b.Authenticating() || !strings.HasPrefix(b.URL(), "tcp://") {
			t.Fatalf("listen %s: %s", listen, b.URL())
		}
		b.Close()
	}
}

// TestStartTLSFiles: a TLS configuration missing a file, or with a client
// CA file that holds no certificate, is refused.
func TestStartTLSFiles(t *testing.T) {
	if _, err := Start(t.Context(), Options{Listen: "127.0.0.1:0", TLS: &TLSFiles{CertFile: "c.pem", KeyFile: "k.pem"}}); err == nil || !strings.Contains(err.Error(), "client CA") {
		t.Fatalf("no client CA: %v", err)
	}
	if _, err := Start(t.Context(), Options{Listen: "127.0.0.1:0", TLS: &TLSFiles{CAFile: "/nonexistent", CertFile: "/nonexistent", KeyFile: "/nonexistent"}}); err == nil {
		t.Fatal("missing files accepted")
	}
}

// TestACL is the broker's ACL, line by line against packaging/mosquitto's
// edgeseal.acl, with subscriptions (filters) checked too.
func TestACL(t *testing.T) {
	const a, mon = ArchiveIdentity, MonitorIdentity
	for _, tc := range []struct {
		id, topic string
		write     bool
		want      bool
	}{
		{"s/d", "edgeseal/v1/s/d/bundles", true, true},
		{"s/d", "edgeseal/v1/s/d/enroll", true, true},
		{"s/d", "edgeseal/v1/s/d/receipts", false, true},
		{"s/d", "edgeseal/v1/s/d/enroll/reply", false, true},
		{"s/d", "edgeseal/v1/s/d/receipts", true, false},
		{"s/d", "edgeseal/v1/s/d/bundles", false, false},
		{"s/d", "edgeseal/v1/s/e/bundles", true, false},
		{"s/d", "edgeseal/v1/s/e/receipts", false, false},
		{"s/d", "edgeseal/v1/s/+/receipts", false, false},
		{"s/d", "edgeseal/v1/+/+/bundles", false, false},
		{"s/d", "$share/archive/edgeseal/v1/+/+/bundles", false, false},
		{"s/d", "$share/archive/edgeseal/v1/s/d/receipts", false, false},
		{"s/d", "edgeseal/v1/alerts", false, false},
		{"s/d", "edgeseal/v1/alerts/s/d", true, true},
		{"s/d", "edgeseal/v1/alerts/s/d", false, false},
		{"s/d", "edgeseal/v1/alerts/s/e", true, false},
		{"s/d", "edgeseal/v1/alerts/t/d", true, false},
		{"s/d", "edgeseal/v1/alerts/+/+", false, false},
		{"s/d", "edgeseal/v1/alerts", true, false},
		{"s/d", "edgeseal/v1/alerts/s/d/x", true, false},
		{"s/d", "#", false, false},
		{"s/d/x", "edgeseal/v1/s/d/x/bundles", true, false},
		{"s/+", "edgeseal/v1/s/+/bundles", true, false},
		{"", "edgeseal/v1/s/d/bundles", true, false},
		{a, "$share/archive/edgeseal/v1/+/+/bundles", false, true},
		{a, "$share/g2/edgeseal/v1/+/+/enroll", false, true},
		{a, "edgeseal/v1/+/+/bundles", false, true},
		{a, "edgeseal/v1/s/d/bundles", false, true},
		{a, "edgeseal/v1/s/d/enroll", false, true},
		{a, "edgeseal/v1/s/d/receipts", true, true},
		{a, "edgeseal/v1/s/d/enroll/reply", true, true},
		{a, "edgeseal/v1/alerts", true, true},
		{a, "edgeseal/v1/s/d/bundles", true, false},
		{a, "edgeseal/v1/#", false, false},
		{a, "$share/archive", false, false},
		{a, "edgeseal/v1/s/+/receipts", true, false},
		{mon, "edgeseal/v1/alerts", false, true},
		{mon, "edgeseal/v1/alerts/+/+", false, true},
		{mon, "edgeseal/v1/alerts/s/d", false, true},
		{mon, "edgeseal/v1/alerts/s/d", true, false},
		{mon, "edgeseal/v1/alerts/edgeseal-monitor", true, false},
		{a, "edgeseal/v1/alerts/+/+", false, true},
		{a, "$share/archive/edgeseal/v1/alerts/+/+", false, true},
		{a, "edgeseal/v1/alerts/s/d", true, false},
		{mon, "edgeseal/v1/alerts", true, false},
		{mon, "edgeseal/v1/+/+/bundles", false, false},
	} {
		if got := allowed(tc.id, tc.topic, tc.write); got != tc.want {
			t.Errorf("allowed(%q, %q, write %v) = %v", tc.id, tc.topic, tc.write, got)
		}
	}
}
