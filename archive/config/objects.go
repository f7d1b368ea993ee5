package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Object store backends.
const (
	BackendFS = "fs"
	BackendS3 = "s3"
)

// DefaultS3Region signs S3 requests when objects.s3.region is left out.
const DefaultS3Region = "us-east-1"

// MaxRetentionDays bounds objects.s3.retention_days (100 years).
const MaxRetentionDays = 36500

// Objects chooses the write-once object store of accepted bundles.
type Objects struct {
	// Backend is "fs" (default: content-addressed files under
	// <data_dir>/objects) or "s3" (Object Lock in COMPLIANCE mode).
	Backend string `yaml:"backend"`
	S3      S3     `yaml:"s3"`
}

// S3 configures the S3 backend. The access key is read from
// CredentialsFile (two lines: access key id, secret access key) or, when
// that is empty, from the environment variables
// EDGESEAL_S3_ACCESS_KEY_ID and EDGESEAL_S3_SECRET_ACCESS_KEY.
type S3 struct {
	// Endpoint is "https://host[:port]" (AWS:
	// https://s3.REGION.amazonaws.com).
	Endpoint string `yaml:"endpoint"`
	// InsecureHTTP allows an "http://" endpoint (a gateway on the same
	// host); requests are still signed, but travel in the clear.
	InsecureHTTP bool `yaml:"insecure_http"`
	// Bucket must exist with Object Lock enabled (the archive refuses to
	// start otherwise).
	Bucket string `yaml:"bucket"`
	// Region signs requests; default us-east-1.
	Region string `yaml:"region"`
	// Prefix is put before every key: "" or a path ending in "/".
	Prefix string `yaml:"prefix"`
	// VirtualHosted addresses the bucket as bucket.host instead of
	// host/bucket (the default, path style).
	VirtualHosted bool `yaml:"virtual_hosted"`
	// CredentialsFile holds the access key (keep it 0600).
	CredentialsFile string `yaml:"credentials_file"`
	// RetentionDays is how long each object is locked from its upload;
	// default and minimum: the archive's retention in days, rounded up,
	// so the lock never ends before the receipts' promise.
	RetentionDays int   `yaml:"retention_days"`
	TLS           S3TLS `yaml:"tls"`
}

// S3TLS configures https to the endpoint (server verification is always
// on).
type S3TLS struct {
	// CAFile is a PEM bundle of roots to trust instead of the system's.
	CAFile string `yaml:"ca_file"`
}

// Retention is RetentionDays as a duration.
func (s S3) Retention() time.Duration { return time.Duration(s.RetentionDays) * 24 * time.Hour }

// retentionDays is d in whole days, rounded up.
func retentionDays(d time.Duration) int {
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// defaults fills the S3 keys left out, once the backend is known.
func (o *Objects) defaults(retention time.Duration) {
	if o.Backend != BackendS3 {
		return
	}
	if o.S3.Region == "" {
		o.S3.Region = DefaultS3Region
	}
	if o.S3.RetentionDays == 0 {
		o.S3.RetentionDays = retentionDays(retention)
	}
}

var (
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	prefixRE = regexp.MustCompile(`^([A-Za-z0-9!_.*'()-]+/)*$`)
)

func (o *Objects) validate(bad func(key, format string, a ...any), retention time.Duration) {
	switch o.Backend {
	case BackendFS:
		if o.S3 != (S3{}) {
			bad("objects.s3", "set only with backend: s3")
		}
		return
	case BackendS3:
	default:
		bad("objects.backend", "%q: want fs or s3", o.Backend)
		return
	}
	s := o.S3
	u, err := url.Parse(s.Endpoint)
	switch {
	case s.Endpoint == "":
		bad("objects.s3.endpoint", "required")
	case err != nil || u.Host == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		bad("objects.s3.endpoint", "%q is not https://host[:port]", s.Endpoint)
	case u.Scheme == "http" && !s.InsecureHTTP:
		bad("objects.s3.endpoint", "%q is plain http: use https, or set insecure_http: true", s.Endpoint)
	case u.Scheme == "https" && s.InsecureHTTP:
		bad("objects.s3.insecure_http", "set only with an http:// endpoint")
	case u.Scheme != "https" && u.Scheme != "http":
		bad("objects.s3.endpoint", "%q: scheme is not https", s.Endpoint)
	case u.Scheme == "http" && s.TLS != (S3TLS{}):
		bad("objects.s3.tls", "set only with an https:// endpoint")
	}
	if !bucketRE.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") || net.ParseIP(s.Bucket) != nil {
		bad("objects.s3.bucket", "%q is not an S3 bucket name (3 to 63 of a-z 0-9 . -)", s.Bucket)
	}
	if !regionRE.MatchString(s.Region) {
		bad("objects.s3.region", "%q is not a region name", s.Region)
	}
	if len(s.Prefix) > 256 || !prefixRE.MatchString(s.Prefix) || strings.Contains("/"+s.Prefix, "/../") || strings.Contains("/"+s.Prefix, "/./") {
		bad("objects.s3.prefix", "%q: want \"\" or path segments of A-Z a-z 0-9 !_.*'()- each ending in /", s.Prefix)
	}
	if min := retentionDays(retention); s.RetentionDays < min || s.RetentionDays > MaxRetentionDays {
		bad("objects.s3.retention_days", "%d: want %d (the archive's retention) to %d", s.RetentionDays, min, MaxRetentionDays)
	}
	if s.VirtualHosted && strings.Contains(s.Bucket, ".") && u != nil && u.Scheme == "https" {
		bad("objects.s3.virtual_hosted", "a bucket name with dots does not match the endpoint's certificate: use path style")
	}
}
