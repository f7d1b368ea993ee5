package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edgeseal/edgeseal/archive"
)

// Per-object retention and legal hold (archive.Retainer). With retention
// classes the archive writes each object with PutRetained: its Object
// Lock retain-until (COMPLIANCE) is the one of its class, not
// Options.Retention. A legal hold is the object's Object Lock legal hold
// (PutObjectLegalHold). Delete removes every version of the key, which
// the server refuses for a version locked or held: the store checks
// first to answer with *archive.RetentionError, the server's refusal is
// the guarantee.

// PutRetained implements archive.RetainedPutter: Put with the object
// locked until until.
func (s *Store) PutRetained(ctx context.Context, digest [32]byte, data []byte, until time.Time) error {
	if err := s.put(ctx, digest, data, until); err != nil {
		return err
	}
	return s.Retain(ctx, digest, until) // an object stored before keeps the later of both
}

// Retain implements archive.Retainer (extends only).
func (s *Store) Retain(ctx context.Context, digest [32]byte, until time.Time) error {
	key := s.Key(digest)
	r, err := s.c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !noRetention(err) {
		if status(err) == http.StatusNotFound {
			return fmt.Errorf("s3store: object %s: %w", s.where(key), archive.ErrNotFound)
		}
		return fmt.Errorf("s3store: retention of %s: %w", s.where(key), err)
	}
	if err == nil && r.Retention != nil && r.Retention.RetainUntilDate != nil && !r.Retention.RetainUntilDate.Before(until) {
		return nil // one request per accepted bundle: the lock is the upload's
	}
	u := until.UTC()
	_, err = s.c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket: &s.bucket, Key: &key,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &u},
	})
	if err != nil {
		return fmt.Errorf("s3store: retain %s: %w", s.where(key), err)
	}
	return nil
}

// Retained implements archive.Retainer: the latest version's.
func (s *Store) Retained(ctx context.Context, digest [32]byte) (time.Time, bool, error) {
	key := s.Key(digest)
	return s.versionRetention(ctx, key, nil)
}

func (s *Store) versionRetention(ctx context.Context, key string, version *string) (time.Time, bool, error) {
	var until time.Time
	r, err := s.c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &key, VersionId: version})
	switch {
	case err == nil && r.Retention != nil && r.Retention.RetainUntilDate != nil:
		until = *r.Retention.RetainUntilDate
	case err != nil && status(err) == http.StatusNotFound && !noRetention(err):
		return until, false, fmt.Errorf("s3store: object %s: %w", s.where(key), archive.ErrNotFound)
	case err != nil && !noRetention(err):
		return until, false, fmt.Errorf("s3store: retention of %s: %w", s.where(key), err)
	}
	h, err := s.c.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: &s.bucket, Key: &key, VersionId: version})
	switch {
	case err == nil:
		return until, h.LegalHold != nil && h.LegalHold.Status == types.ObjectLockLegalHoldStatusOn, nil
	case noRetention(err):
		return until, false, nil
	}
	return until, false, fmt.Errorf("s3store: legal hold of %s: %w", s.where(key), err)
}

// noRetention tells the error S3 answers for an object without a
// retention or legal hold.
func noRetention(err error) bool {
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError":
		return true
	}
	return false
}

// SetLegalHold implements archive.Retainer.
func (s *Store) SetLegalHold(ctx context.Context, digest [32]byte, on bool) error {
	key := s.Key(digest)
	st := types.ObjectLockLegalHoldStatusOff
	if on {
		st = types.ObjectLockLegalHoldStatusOn
	}
	_, err := s.c.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{Bucket: &s.bucket, Key: &key, LegalHold: &types.ObjectLockLegalHold{Status: st}})
	if err != nil {
		if status(err) == http.StatusNotFound {
			return fmt.Errorf("s3store: object %s: %w", s.where(key), archive.ErrNotFound)
		}
		return fmt.Errorf("s3store: legal hold of %s: %w", s.where(key), err)
	}
	return nil
}

// Delete implements archive.Retainer: every version of the key, each
// past its retain-until and not held.
func (s *Store) Delete(ctx context.Context, digest [32]byte) error {
	key := s.Key(digest)
	out, err := s.c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: &key})
	if err != nil {
		return fmt.Errorf("s3store: delete: versions of %s: %w", s.where(key), err)
	}
	now := s.now()
	var ids []*string
	for _, v := range out.Versions {
		if aws.ToString(v.Key) != key {
			continue
		}
		until, held, err := s.versionRetention(ctx, key, v.VersionId)
		if err != nil {
			return err
		}
		if held || until.IsZero() || now.Before(until) {
			return &archive.RetentionError{Digest: digest, Until: until, Held: held, Now: now}
		}
		ids = append(ids, v.VersionId)
	}
	for _, m := range out.DeleteMarkers {
		if aws.ToString(m.Key) == key {
			ids = append(ids, m.VersionId)
		}
	}
	for _, id := range ids {
		if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key, VersionId: id}); err != nil {
			return fmt.Errorf("s3store: delete %s version %s: %w", s.where(key), aws.ToString(id), err)
		}
	}
	return nil
}
