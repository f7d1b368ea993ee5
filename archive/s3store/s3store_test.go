package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/objstoretest"
	"github.com/edgeseal/edgeseal/archive/s3store"
	"github.com/edgeseal/edgeseal/archive/s3store/s3test"
)

// TestStore runs the object store conformance suite and the Object Lock
// checks against a real versitygw.
func TestStore(t *testing.T) {
	g := s3test.Start(t)
	open := func(t *testing.T) *s3store.Store {
		t.Helper()
		s, err := s3store.New(t.Context(), g.Options(g.Bucket(t)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("conformance", func(t *testing.T) {
		objstoretest.Run(t, objstoretest.Harness{
			Lister: true,
			New:    func(t *testing.T) archive.ObjectStore { return open(t) },
			// A writer holding the credentials puts other bytes over the
			// key: Object Lock keeps the locked version, but the key now
			// names a newer one.
			Alter: func(t *testing.T, st archive.ObjectStore, digest [32]byte, data []byte) {
				s := st.(*s3store.Store)
				key := s.Key(digest)
				if _, err := s.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, Body: bytes.NewReader(data)}); err != nil {
					t.Fatalf("tamper put: %v", err)
				}
			},
		})
	})
	t.Run("locked", func(t *testing.T) { testLocked(t, open(t)) })
	t.Run("stored once", func(t *testing.T) {
		s := open(t)
		data := bytes.Repeat([]byte("once "), 1000)
		d := sha256.Sum256(data)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Go(func() { errs <- s.Put(t.Context(), d, data) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(t.Context(), d, data); err != nil {
			t.Fatal(err)
		}
		if vs := versions(t, s, d); len(vs) != 1 {
			t.Fatalf("%d versions of a bundle put 7 times, want 1", len(vs))
		}
	})
	t.Run("bucket without object lock", func(t *testing.T) {
		c, err := s3store.NewClient(g.Options("unused"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("edgeseal-nolock")}); err != nil {
			t.Fatal(err)
		}
		_, err = s3store.New(t.Context(), g.Options("edgeseal-nolock"))
		if !errors.Is(err, s3store.ErrNoObjectLock) {
			t.Fatalf("New on a bucket without Object Lock: %v, want ErrNoObjectLock", err)
		}
	})
	t.Run("unlocked copy is locked", func(t *testing.T) {
		s := open(t)
		data := []byte("written by someone else, unlocked")
		d := sha256.Sum256(data)
		key := s.Key(d)
		if _, err := s.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Client().GetObjectRetention(t.Context(), &s3.GetObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: &key}); err == nil && r.Retention != nil && r.Retention.Mode != "" {
			t.Fatalf("the copy is locked already: %+v", r.Retention)
		}
		if err := s.Put(t.Context(), d, data); err != nil {
			t.Fatal(err)
		}
		r, err := s.Client().GetObjectRetention(t.Context(), &s3.GetObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: &key})
		if err != nil || r.Retention == nil || r.Retention.Mode != types.ObjectLockRetentionModeCompliance {
			t.Fatalf("retention after Put over an unlocked copy: %+v, %v", r, err)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		o := g.Options(g.Bucket(t))
		o.Credentials.SecretAccessKey = "not-the-secret"
		if _, err := s3store.New(t.Context(), o); err == nil || s3store.Status(err) != http.StatusForbidden {
			t.Fatalf("New with a wrong secret: %v (status %d), want 403", err, s3store.Status(err))
		}
	})
}

// testLocked checks that a stored object is locked in COMPLIANCE mode
// until now+retention, and that the server refuses to delete it, to
// shorten or weaken its lock and to overwrite it conditionally; an
// unconditional put of other bytes makes a newer version that the store
// reports as an alarm while the locked version stays intact.
func testLocked(t *testing.T, s *s3store.Store) {
	ctx := t.Context()
	data := bytes.Repeat([]byte("locked bundle;"), 200)
	d := sha256.Sum256(data)
	before := time.Now()
	if err := s.Put(ctx, d, data); err != nil {
		t.Fatal(err)
	}
	key := s.Key(d)
	h, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if h.ObjectLockMode != types.ObjectLockModeCompliance || h.ObjectLockRetainUntilDate == nil {
		t.Fatalf("lock mode %q until %v, want COMPLIANCE", h.ObjectLockMode, h.ObjectLockRetainUntilDate)
	}
	if until := *h.ObjectLockRetainUntilDate; until.Before(before.Add(s.Retention()).Add(-time.Minute)) || until.After(time.Now().Add(s.Retention()).Add(time.Minute)) {
		t.Fatalf("retained until %v, want about %v", until, before.Add(s.Retention()))
	}
	v1 := aws.ToString(h.VersionId)
	if v1 == "" {
		t.Fatal("no version id: versioning is off")
	}
	// refused checks the server answered with the status want (403: the
	// lock refuses; 412: the key exists), not some other failure.
	refused := func(what string, err error, want int) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s of a locked object was accepted", what)
		}
		if got := s3store.Status(err); got != want {
			t.Fatalf("%s: %v (status %d), want status %d", what, err, got, want)
		}
		t.Logf("%s refused: %v", what, err)
	}
	_, err = s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, VersionId: &v1})
	refused("DeleteObject of the version", err, http.StatusForbidden)
	_, err = s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, VersionId: &v1, BypassGovernanceRetention: aws.Bool(true)})
	refused("DeleteObject of the version bypassing governance", err, http.StatusForbidden)
	out, err := s.Client().DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.Bucket()), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: &key, VersionId: &v1}}}})
	if err == nil { // DeleteObjects answers 200 with an error per key
		if len(out.Errors) != 1 || len(out.Deleted) != 0 || aws.ToString(out.Errors[0].Code) != "AccessDenied" {
			t.Fatalf("DeleteObjects of the locked version: deleted %d, errors %+v", len(out.Deleted), out.Errors)
		}
		t.Logf("DeleteObjects of the version refused: %s: %s", aws.ToString(out.Errors[0].Code), aws.ToString(out.Errors[0].Message))
	} else {
		refused("DeleteObjects of the version", err, http.StatusForbidden)
	}
	soon := time.Now().Add(time.Hour)
	_, err = s.Client().PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: &key, VersionId: &v1,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &soon}})
	refused("shortening the retention", err, http.StatusForbidden)
	later := time.Now().Add(s.Retention() + time.Hour)
	_, err = s.Client().PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: &key, VersionId: &v1,
		BypassGovernanceRetention: aws.Bool(true),
		Retention:                 &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: &later}})
	refused("weakening the lock to GOVERNANCE", err, http.StatusForbidden)
	other := bytes.Repeat([]byte("forged bundle;"), 200)
	_, err = s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, Body: bytes.NewReader(other), IfNoneMatch: aws.String("*")})
	refused("a conditional PutObject of other bytes", err, http.StatusPreconditionFailed)
	if got := versionBytes(t, s, key, v1); !bytes.Equal(got, data) {
		t.Fatalf("locked version changed: %d bytes", len(got))
	}

	// An unconditional put makes a newer version (Object Lock protects
	// versions, not keys): the store reads other bytes under the digest,
	// an alarm, and the locked version is intact.
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, Body: bytes.NewReader(other)}); err != nil {
		t.Fatalf("unconditional PutObject of other bytes: %v", err)
	}
	var ce *archive.CorruptError
	if _, err := s.Get(ctx, d); !errors.As(err, &ce) || ce.Digest != d {
		t.Fatalf("Get after a forged version: %v, want *CorruptError", err)
	}
	var conflict *archive.ConflictError
	if err := s.Put(ctx, d, data); !errors.As(err, &conflict) || conflict.Digest != d {
		t.Fatalf("Put after a forged version: %v, want *ConflictError", err)
	}
	if got := versionBytes(t, s, key, v1); !bytes.Equal(got, data) {
		t.Fatalf("locked version changed after the forged put: %d bytes", len(got))
	}
	// A delete without a version id only hides the key behind a delete
	// marker: the locked version stays, and a Put writes the bytes anew.
	if _, err := s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: &key}); err != nil {
		t.Fatalf("DeleteObject without a version: %v", err)
	}
	if ok, err := s.Has(ctx, d); err != nil || ok {
		t.Fatalf("Has behind a delete marker = %v, %v", ok, err)
	}
	if got := versionBytes(t, s, key, v1); !bytes.Equal(got, data) {
		t.Fatalf("locked version changed after the deletes: %d bytes", len(got))
	}
	if err := s.Put(ctx, d, data); err != nil {
		t.Fatalf("Put behind a delete marker: %v", err)
	}
	if got, err := s.Get(ctx, d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after the Put behind a delete marker: %v", err)
	}
}

func versionBytes(t *testing.T, s *s3store.Store, key, version string) []byte {
	t.Helper()
	out, err := s.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: &key, VersionId: &version})
	if err != nil {
		t.Fatalf("get version %s: %v", version, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func versions(t *testing.T, s *s3store.Store, d [32]byte) []types.ObjectVersion {
	t.Helper()
	key := s.Key(d)
	out, err := s.Client().ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(s.Bucket()), Prefix: &key})
	if err != nil {
		t.Fatal(err)
	}
	return out.Versions
}
