package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/internal/apicert"
)

// cmdAgentTLSCert runs `agent tls-cert --out-dir DIR [--host H,...]
// [--days N]`: makes a one-use CA and the certificate and key of the
// agent's loopback TLS listener (api.tcp) in DIR, never over existing
// files, and prints the config lines and the file the clients trust.
func cmdAgentTLSCert(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("agent tls-cert", flag.ContinueOnError)
	outDir := fs.String("out-dir", "", "the directory to write api-ca.pem, api-cert.pem, api-key.pem to (required)")
	hosts := fs.String("host", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names the clients dial")
	days := fs.Int("days", 825, "days the certificates are valid")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *outDir == "" || len(pos) > 0 {
		return usageErr("agent tls-cert: want --out-dir DIR and no arguments")
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	set, err := apicert.Make(hs, *days, time.Now())
	if err != nil {
		return fmt.Errorf("agent tls-cert: %w", err)
	}
	if err := apicert.Write(*outDir, set); err != nil {
		return fmt.Errorf("agent tls-cert: %w", err)
	}
	dir, err := filepath.Abs(*outDir)
	if err != nil {
		return fmt.Errorf("agent tls-cert: %w", err)
	}
	fmt.Fprintf(stdout, `made for %s, valid %d days (the CA's key was discarded: it signed this certificate only)
in agent.yaml:
api:
  tcp: %s:8443
  tls_cert: %s
  tls_key: %s
the key is 0640: chown root:edgeseal %s
clients trust (public; NODE_EXTRA_CA_CERTS, Node-RED's CA file, curl --cacert):
%s
`, strings.Join(hs, ", "), *days, loopbackHost(hs), filepath.Join(dir, apicert.CertFile), filepath.Join(dir, apicert.KeyFile),
		filepath.Join(dir, apicert.KeyFile), filepath.Join(dir, apicert.CAFile))
	return nil
}

// loopbackHost is the host part of the suggested api.tcp address: the
// first IP address given, bracketed if IPv6, or 127.0.0.1.
func loopbackHost(hosts []string) string {
	for _, h := range hosts {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		if strings.Count(h, ".") == 3 && strings.Trim(h, "0123456789.") == "" {
			return h
		}
	}
	return "127.0.0.1"
}
