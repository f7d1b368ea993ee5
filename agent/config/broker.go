package config

import (
	"fmt"
	"net"
	"net/url"
)

// checkPlainBroker returns why a tcp:// broker URL is refused without
// sync.insecure_tcp: its host is not a loopback address (127.0.0.0/8, ::1
// or localhost), so bundles, receipts and the device's identity would
// cross the network unencrypted and unauthenticated. "" when it is
// loopback.
func checkPlainBroker(broker string) string {
	u, err := url.Parse(broker)
	if err != nil || u.Hostname() == "" {
		return fmt.Sprintf("want tcp://HOST:PORT or ssl://HOST:PORT, got %.80q", broker)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return ""
	}
	return fmt.Sprintf("plain tcp:// to %.80q, which is not a loopback address: bundles, receipts and the device's identity would travel unencrypted and unauthenticated; use ssl:// with sync.ca, sync.cert and sync.key, or set sync.insecure_tcp: true to accept that", host)
}
