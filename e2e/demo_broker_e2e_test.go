package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// demoBrokerAddr is the embedded broker's address the demo prints.
var demoBrokerAddr = regexp.MustCompile(`embedded MQTT broker on ssl://(127\.0\.0\.1:[0-9]+)`)

// mqttConnect is an MQTT 3.1.1 CONNECT packet: clean session, keep alive
// 60 s, client id "probe", no username or password.
var mqttConnect = []byte{
	0x10, 17, // CONNECT, remaining length
	0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, // protocol, level, flags, keep alive
	0, 5, 'p', 'r', 'o', 'b', 'e', // client id
}

// mqttProbe sends CONNECT over c and returns the first bytes answered
// (a CONNACK is 0x20 0x02 flags code), or the error that ended the read.
func mqttProbe(c net.Conn) ([]byte, error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(mqttConnect); err != nil {
		return nil, err
	}
	buf := make([]byte, 4)
	n, err := io.ReadFull(c, buf)
	return buf[:n], err
}

func isConnack(b []byte) bool { return len(b) == 4 && b[0] == 0x20 && b[1] == 2 }

// checkDemoBrokerRefusesAnonymous: the demo's broker (addr) answers no
// CONNECT over plain TCP, nor over TLS without a client certificate; the
// device's certificate of the demo's CA (dir/tls) gets a CONNACK that
// accepts it, so the refusals are the broker's and not a dead port.
func checkDemoBrokerRefusesAnonymous(t *testing.T, addr, dir string) {
	t.Helper()
	for _, f := range []string{"ca.pem", "broker.key", "device.key", "device.pem", "broker.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, "tls", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("demo tls/%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("the demo's broker %s: %v", addr, err)
	}
	if got, err := mqttProbe(c); isConnack(got) || err == nil {
		t.Fatalf("plain TCP MQTT CONNECT to the demo's broker answered % x (%v), want the connection refused", got, err)
	}

	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("demo tls/ca.pem: no certificate")
	}
	dialTLS := func(certs []tls.Certificate) ([]byte, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		return mqttProbe(c)
	}
	if got, err := dialTLS(nil); isConnack(got) || err == nil {
		t.Fatalf("TLS without a client certificate: the demo's broker answered % x (%v), want the connection refused", got, err)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("TLS without a client certificate: the demo's broker neither refused nor answered: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls", "device.pem"), filepath.Join(dir, "tls", "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dialTLS([]tls.Certificate{cert}); err != nil || !isConnack(got) || got[3] != 0 {
		t.Fatalf("the device's certificate: the demo's broker answered % x (%v), want a CONNACK accepting it", got, err)
	}
}
