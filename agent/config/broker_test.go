package config

import (
	"errors"
	"strings"
	"testing"
)

// TestPlainTCPBroker: a tcp:// broker on a loopback address is accepted;
// on any other host only with sync.insecure_tcp, and refused without it
// with an error naming sync.broker and the setting.
func TestPlainTCPBroker(t *testing.T) {
	for _, broker := range []string{"tcp://127.0.0.1:1883", "tcp://localhost:1883", "tcp://[::1]:1883", "ssl://archive.example.net:8883\n  ca: ca.pem"} {
		if _, err := Parse(minimal("sync:\n  broker: " + broker + "\n  archive_key: k.pub\n")); err != nil {
			t.Errorf("%s: %v", broker, err)
		}
	}
	remote := "sync:\n  broker: tcp://archive.example.net:1883\n  archive_key: k.pub\n"
	_, err := Parse(minimal(remote))
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "sync.broker: ") || !strings.Contains(err.Error(), "sync.insecure_tcp") {
		t.Fatalf("remote tcp:// without sync.insecure_tcp: %v", err)
	}
	c, err := Parse(minimal(remote + "  insecure_tcp: true\n"))
	if err != nil || !c.Sync.InsecureTCP {
		t.Fatalf("remote tcp:// with sync.insecure_tcp: %v", err)
	}
}
