package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// Probe connects with the right certificates, and fails with a
// *ConnectError without the client certificate, against an untrusted
// server, and once the broker is down.
func TestProbe(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, &mqtttest.Options{TLS: pki.Files()})
	ctx := context.Background()
	probe := func(tc *tls.Config) error {
		return Probe(ctx, ProbeOptions{Broker: b.URL, ClientID: "probe-test", TLS: tc, Timeout: 5 * time.Second})
	}
	if err := probe(pki.ClientTLS(true)); err != nil {
		t.Fatalf("probe with the client certificate: %v", err)
	}
	var ce *ConnectError
	if err := probe(pki.ClientTLS(false)); !errors.As(err, &ce) {
		t.Errorf("probe without a client certificate: %v, want *ConnectError", err)
	}
	if err := probe(mqtttest.NewPKI(t).ClientTLS(true)); !errors.As(err, &ce) {
		t.Errorf("probe of an untrusted server: %v, want *ConnectError", err)
	}
	if err := Probe(ctx, ProbeOptions{Broker: b.URL, TLS: pki.ClientTLS(true)}); err == nil {
		t.Error("probe without a client id passed")
	}
	b.Stop()
	if err := probe(pki.ClientTLS(true)); !errors.As(err, &ce) {
		t.Errorf("probe of a stopped broker: %v, want *ConnectError", err)
	}
}
