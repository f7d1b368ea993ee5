package s3store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Credentials are a static S3 access key.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Environment variables LoadCredentials reads when no file is given.
const (
	EnvAccessKeyID     = "EDGESEAL_S3_ACCESS_KEY_ID"
	EnvSecretAccessKey = "EDGESEAL_S3_SECRET_ACCESS_KEY"
)

// maxCredentialsFile bounds what ParseCredentials reads.
const maxCredentialsFile = 4096

// ParseCredentials reads a credentials file: the access key id on the
// first line, the secret access key on the second, nothing else (a final
// newline and surrounding spaces are allowed; "\r\n" too). Neither may
// hold spaces or control characters.
func ParseCredentials(data []byte) (Credentials, error) {
	if len(data) > maxCredentialsFile {
		return Credentials{}, fmt.Errorf("s3store: credentials: larger than %d bytes", maxCredentialsFile)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n\t "), "\n")
	if len(lines) != 2 {
		return Credentials{}, errors.New("s3store: credentials: want two lines: access key id, secret access key")
	}
	var c Credentials
	for i, p := range []*string{&c.AccessKeyID, &c.SecretAccessKey} {
		v := strings.TrimSpace(lines[i])
		if v == "" || len(v) > 1024 || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return Credentials{}, fmt.Errorf("s3store: credentials: line %d is empty or has spaces or control characters", i+1)
		}
		*p = v
	}
	return c, nil
}

// LoadCredentials reads the credentials file at path, or, when path is
// "", the environment variables EnvAccessKeyID and EnvSecretAccessKey
// (through getenv, e.g. os.Getenv).
func LoadCredentials(path string, getenv func(string) string) (Credentials, error) {
	if path == "" {
		c := Credentials{AccessKeyID: getenv(EnvAccessKeyID), SecretAccessKey: getenv(EnvSecretAccessKey)}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return Credentials{}, fmt.Errorf("s3store: credentials: no credentials file, and %s or %s is not set", EnvAccessKeyID, EnvSecretAccessKey)
		}
		return ParseCredentials([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey))
	}
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("s3store: credentials: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, maxCredentialsFile+1)); err != nil {
		return Credentials{}, fmt.Errorf("s3store: credentials: %w", err)
	}
	c, err := ParseCredentials(buf.Bytes())
	if err != nil {
		return Credentials{}, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}
