// Package s3store is the S3 archive.ObjectStore: every object is written
// once, with Object Lock retention in COMPLIANCE mode, so that nobody (the
// bucket's owner and root included) can delete or shorten the retention of
// a stored version before it ends. It is the only package that imports the
// AWS SDK.
//
// An object lives at <prefix>sha256/<hex of its digest>. Put writes it with
// the x-amz-checksum-sha256 of the digest (the server refuses bytes that do
// not hash to it), If-None-Match: * (a key is created once, even by
// concurrent writers), and a retention of Options.Retention from now
// (PutRetained: the retain-until of the bundle's retention class; a
// legal hold and the deletion of an expired object are in retention.go). A
// key that exists already is read back and compared byte for byte, as
// FSStore does: the same bytes are a no-op, other bytes an alarm
// (*archive.ConflictError). Object Lock protects versions, not keys: a
// writer holding the credentials can still put a newer version over a
// key (it cannot remove the locked one); the store then reads the newer
// version and reports it (*archive.CorruptError from Get,
// *archive.ConflictError from Put), while the locked version stays in the
// bucket for the audit.
//
// Put returns once the server has answered the upload (S3's promise of
// durability), never before. New refuses a bucket without Object Lock
// enabled. The test (s3test) runs all of this against a real versitygw.
package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/edgeseal/edgeseal/archive"
)

// MinRetention is the shortest retention New accepts.
const MinRetention = 24 * time.Hour

// Options configure a Store.
type Options struct {
	// Endpoint is the S3 service, "https://host[:port]"; "http://" only
	// with AllowHTTP. Required (this package does not guess AWS regions'
	// endpoints: give "https://s3.REGION.amazonaws.com" for AWS).
	Endpoint string
	// AllowHTTP accepts an http:// endpoint (a gateway on the same host).
	AllowHTTP bool
	// TLS configures https (nil: the system's roots). Server
	// verification stays on.
	TLS *tls.Config
	// Bucket must exist with Object Lock enabled.
	Bucket string
	// Region signs the requests. Default "us-east-1".
	Region string
	// Prefix is put before every key ("" or ending in "/").
	Prefix string
	// VirtualHosted addresses the bucket as a host name
	// (bucket.host) instead of the path (host/bucket).
	VirtualHosted bool
	// Credentials sign the requests.
	Credentials Credentials
	// Retention is how long each object is locked (COMPLIANCE mode) from
	// its Put; at least MinRetention.
	Retention time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Store is the S3 ObjectStore. Its methods are safe for concurrent use.
type Store struct {
	c         *s3.Client
	bucket    string
	prefix    string
	retention time.Duration
	now       func() time.Time
}

// New checks opts and that the bucket has Object Lock enabled.
func New(ctx context.Context, opts Options) (*Store, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	if opts.Retention < MinRetention {
		return nil, fmt.Errorf("s3store: retention %s is less than %s", opts.Retention, MinRetention)
	}
	if opts.Prefix != "" && opts.Prefix[len(opts.Prefix)-1] != '/' {
		return nil, fmt.Errorf("s3store: prefix %q does not end in /", opts.Prefix)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	out, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &opts.Bucket})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" {
		return nil, fmt.Errorf("s3store: bucket %s: %w", opts.Bucket, ErrNoObjectLock)
	}
	if err != nil {
		return nil, fmt.Errorf("s3store: bucket %s: object lock configuration: %w", opts.Bucket, err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return nil, fmt.Errorf("s3store: bucket %s: %w", opts.Bucket, ErrNoObjectLock)
	}
	return &Store{c: c, bucket: opts.Bucket, prefix: opts.Prefix, retention: opts.Retention, now: opts.Now}, nil
}

// ErrNoObjectLock reports a bucket without Object Lock enabled: objects
// written there could be deleted, so New refuses it.
var ErrNoObjectLock = errors.New("s3store: object lock is not enabled on the bucket")

func newClient(opts Options) (*s3.Client, error) {
	u, err := url.Parse(opts.Endpoint)
	switch {
	case err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return nil, fmt.Errorf("s3store: endpoint %q is not scheme://host[:port]", opts.Endpoint)
	case u.Scheme == "http" && !opts.AllowHTTP:
		return nil, fmt.Errorf("s3store: endpoint %q is plain http (allow it explicitly)", opts.Endpoint)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("s3store: endpoint %q: scheme is not https", opts.Endpoint)
	}
	if opts.Bucket == "" {
		return nil, errors.New("s3store: bucket is empty")
	}
	if opts.Credentials.AccessKeyID == "" || opts.Credentials.SecretAccessKey == "" {
		return nil, errors.New("s3store: credentials are empty")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.TLS != nil {
		tr.TLSClientConfig = opts.TLS.Clone()
	}
	creds := opts.Credentials
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(u.Scheme + "://" + u.Host),
		Region:       opts.Region,
		UsePathStyle: !opts.VirtualHosted,
		HTTPClient:   &http.Client{Transport: tr},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, Source: "edgeseal"}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}), nil
}

// Key is the object key of digest (present or not).
func (s *Store) Key(digest [32]byte) string {
	return s.prefix + "sha256/" + hex.EncodeToString(digest[:])
}

func (s *Store) where(key string) string { return "s3://" + s.bucket + "/" + key }

// Put implements archive.ObjectStore.
func (s *Store) Put(ctx context.Context, digest [32]byte, data []byte) error {
	return s.put(ctx, digest, data, time.Time{})
}

// put is Put with the object locked until until (zero: now + retention).
func (s *Store) put(ctx context.Context, digest [32]byte, data []byte, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := sha256.Sum256(data); got != digest {
		return &archive.DigestError{Want: digest, Got: got}
	}
	key := s.Key(digest)
	if same, err := s.sameAs(ctx, key, digest, data); err == nil {
		return same
	} else if !errors.Is(err, archive.ErrNotFound) {
		return err
	}
	err := s.write(ctx, key, digest, data, true, until)
	if st := status(err); err == nil || (st != http.StatusPreconditionFailed && st != http.StatusConflict) {
		return err
	}
	// A concurrent Put created the key (412), or is creating it (409):
	// compare with what it wrote once it is visible. A key hidden by a
	// delete marker also answers 412: its locked versions remain, and the
	// bytes are written anew.
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		same, err := s.sameAs(ctx, key, digest, data)
		if err == nil {
			return same
		}
		if !errors.Is(err, archive.ErrNotFound) {
			return err
		}
		if hidden, err := s.deleted(ctx, key); err != nil {
			return err
		} else if hidden {
			return s.write(ctx, key, digest, data, false, until)
		}
		if wait > 2*time.Second {
			return fmt.Errorf("s3store: put %s: a concurrent write did not complete: %w", s.where(key), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// write puts data under key, locked in COMPLIANCE mode until until (zero:
// now + retention), with its SHA-256 for the server to check; if it is
// conditional, only when key does not exist (If-None-Match: *).
func (s *Store) write(ctx context.Context, key string, digest [32]byte, data []byte, conditional bool, until time.Time) error {
	if until.IsZero() {
		until = s.now().Add(s.retention)
	}
	until = until.UTC()
	in := &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data),
		ContentLength:             aws.Int64(int64(len(data))),
		ContentType:               aws.String("application/octet-stream"),
		ChecksumSHA256:            aws.String(base64.StdEncoding.EncodeToString(digest[:])),
		ObjectLockMode:            types.ObjectLockModeCompliance,
		ObjectLockRetainUntilDate: &until,
	}
	if conditional {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.c.PutObject(ctx, in); err != nil {
		return fmt.Errorf("s3store: put %s: %w", s.where(key), err)
	}
	return nil
}

// deleted reports whether key's latest version is a delete marker.
func (s *Store) deleted(ctx context.Context, key string) (bool, error) {
	out, err := s.c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: &key})
	if err != nil {
		return false, fmt.Errorf("s3store: put: versions of %s: %w", s.where(key), err)
	}
	for _, m := range out.DeleteMarkers {
		if aws.ToString(m.Key) == key && aws.ToBool(m.IsLatest) {
			return true, nil
		}
	}
	return false, nil
}

// sameAs compares the stored object with data: (nil, nil) when equal,
// (*archive.ConflictError, nil) when different, (nil, ErrNotFound) when
// absent. An equal object stored without a COMPLIANCE lock (written by
// something else than this store) is locked now.
func (s *Store) sameAs(ctx context.Context, key string, digest [32]byte, data []byte) (error, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if status(err) == http.StatusNotFound {
			return nil, fmt.Errorf("s3store: object %s: %w", s.where(key), archive.ErrNotFound)
		}
		return nil, fmt.Errorf("s3store: put: %w", err)
	}
	old, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("s3store: put: read %s: %w", s.where(key), err)
	}
	if !bytes.Equal(old, data) {
		return &archive.ConflictError{Digest: digest, Where: s.where(key)}, nil
	}
	if out.ObjectLockMode == types.ObjectLockModeCompliance {
		return nil, nil
	}
	return nil, s.ensureLocked(ctx, key, out.VersionId)
}

// ensureLocked locks version of key in COMPLIANCE mode unless it is
// already. (A GET racing with the Put that creates an object may see it
// before its retention, so the retention is asked for first, and again
// when setting it is refused.)
func (s *Store) ensureLocked(ctx context.Context, key string, version *string) error {
	locked := func() bool {
		r, err := s.c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &key, VersionId: version})
		return err == nil && r.Retention != nil && r.Retention.Mode == types.ObjectLockRetentionModeCompliance
	}
	if locked() {
		return nil
	}
	until := s.now().Add(s.retention).UTC()
	_, err := s.c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket: &s.bucket, Key: &key, VersionId: version,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &until},
	})
	if err != nil && !locked() {
		return fmt.Errorf("s3store: put: lock %s: %w", s.where(key), err)
	}
	return nil
}

// Get implements archive.ObjectStore.
func (s *Store) Get(ctx context.Context, digest [32]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := s.Key(digest)
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if status(err) == http.StatusNotFound {
			return nil, fmt.Errorf("s3store: object sha256:%x: %w", digest, archive.ErrNotFound)
		}
		return nil, fmt.Errorf("s3store: get %s: %w", s.where(key), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w", s.where(key), err)
	}
	if got := sha256.Sum256(data); got != digest {
		return nil, &archive.CorruptError{Digest: digest, Got: got, Where: s.where(key)}
	}
	return data, nil
}

// Has implements archive.ObjectStore.
func (s *Store) Has(ctx context.Context, digest [32]byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := s.Key(digest)
	_, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	switch {
	case err == nil:
		return true, nil
	case status(err) == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("s3store: has %s: %w", s.where(key), err)
}

// status is the HTTP status of a failed request, 0 when none came back.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return http.StatusNotFound
		case "PreconditionFailed":
			return http.StatusPreconditionFailed
		}
	}
	return 0
}

// CreateBucket creates opts.Bucket with Object Lock enabled (and so
// versioning): the bucket New accepts.
func CreateBucket(ctx context.Context, opts Options) error {
	c, err := newClient(opts)
	if err != nil {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: &opts.Bucket, ObjectLockEnabledForBucket: aws.Bool(true)}
	if opts.Region != "" && opts.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(opts.Region)}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("s3store: create bucket %s: %w", opts.Bucket, err)
	}
	return nil
}
