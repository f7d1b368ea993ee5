package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/s3store"
)

// openObjects opens the write-once object store the config chooses: the
// filesystem under <data_dir>/objects, or an S3 bucket with Object Lock
// (checked before the archive starts).
func openObjects(ctx context.Context, cfg *config.Config) (archive.ObjectStore, error) {
	switch cfg.Objects.Backend {
	case config.BackendFS:
		return archive.NewFSStore(filepath.Join(cfg.DataDir, "objects"))
	case config.BackendS3:
	default:
		return nil, fmt.Errorf("objects: unknown backend %q", cfg.Objects.Backend)
	}
	s := cfg.Objects.S3
	creds, err := s3store.LoadCredentials(s.CredentialsFile, os.Getenv)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if s.TLS.CAFile != "" {
		pemData, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("objects: s3 tls: %w", err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("objects: s3 tls: no certificate in %s", s.TLS.CAFile)
		}
	}
	return s3store.New(ctx, s3store.Options{
		Endpoint: s.Endpoint, AllowHTTP: s.InsecureHTTP, TLS: tc,
		Bucket: s.Bucket, Region: s.Region, Prefix: s.Prefix, VirtualHosted: s.VirtualHosted,
		Credentials: creds, Retention: s.Retention(),
	})
}
