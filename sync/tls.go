package sync

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientTLS is the client TLS of an ssl:// MQTT link, as the agent's
// sync.ca/cert/key and the archive's mqtt.tls configure it: the broker
// verified against the PEM certificates of caFile (the system roots when
// it is empty) and the client certificate of certFile and keyFile when
// they are set. With no file named it returns nil, which the publisher,
// the subscriber and Enroll take as the system roots for ssl://.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("sync: tls: ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("sync: tls: ca %s: no PEM certificate in it", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("sync: tls: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
