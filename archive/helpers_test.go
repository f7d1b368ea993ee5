package archive_test

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/sqlindex"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func filepathDir(p string) string { return filepath.Dir(p) }

// env is an archive under test with the alerts it raised.
type env struct {
	t      *testing.T
	dir    string
	key    ed25519.PrivateKey
	a      *archive.Archive
	mu     gosync.Mutex
	alerts []archive.Alert
	quar   archive.QuarantineLimits // AlertInterval -1 unless set
	// op, when set, is the archive's operator key: approve signs a
	// device.approve statement with it.
	op ed25519.PrivateKey
	// objects, when set, is the object store (default: under dir).
	objects archive.ObjectStore
	// wrap, when set, wraps the content private keys at rest.
	wrap archive.ContentKeyWrapper
	// engine and dsn choose the archive log's engine (default: the
	// archive's default, or EDGESEAL_TEST_LOG_ENGINE when set).
	engine, dsn string
	// indexDSN, when set, is the MariaDB database of the export index
	// (archive/sqlindex; EDGESEAL_TEST_INDEX_ENGINE=mysql sets it for
	// newEnv): each open opens it on a pool of its own, index.
	indexDSN string
	index    store.IndexStore
}

var testKey = ed25519.NewKeyFromSeed(make([]byte, 32))

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), key: testKey}
	e.indexFromEnv()
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	return e
}

// indexFromEnv sets e.indexDSN to a fresh database of a MariaDB server
// when EDGESEAL_TEST_INDEX_ENGINE is mysql (badger or unset: the
// archive's Dir/search), and closes e's last index after the archive
// (call before newEnv's cleanup is registered).
func (e *env) indexFromEnv() {
	e.t.Helper()
	switch v := os.Getenv("EDGESEAL_TEST_INDEX_ENGINE"); v {
	case "", "badger":
	case "mysql":
		e.indexDSN = mariadbtest.Start(e.t).Database(e.t)
	default:
		e.t.Fatalf("EDGESEAL_TEST_INDEX_ENGINE=%s: want badger or mysql", v)
	}
	e.t.Cleanup(func() {
		if e.index != nil {
			e.index.Close()
		}
	})
}

// sqlIndex reports whether e's export index is on MariaDB.
func (e *env) sqlIndex() bool { return e.indexDSN != "" }

// openIndex opens e.indexDSN's index (nil without one), closing the one
// the archive closed before.
func (e *env) openIndex() store.IndexStore {
	e.t.Helper()
	if e.index != nil && e.a == nil {
		e.index.Close()
		e.index = nil
	}
	if e.indexDSN == "" {
		return nil
	}
	x, err := sqlindex.OpenMySQL(e.t.Context(), e.indexDSN, sqlindex.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.index = x
	return x
}

func (e *env) open() {
	e.t.Helper()
	xi := e.openIndex()
	a, err := archive.Open(e.t.Context(), archive.Options{
		ExportIndex: xi,
		Dir:         e.dir, Key: e.key, Objects: e.objects,
		Now:            func() time.Time { return time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC) },
		Quarantine:     e.quarLimits(),
		OperatorKeys:   e.operatorKeys(),
		ContentKeyWrap: e.wrap,
		LogEngine:      e.engineName(), LogDSN: e.dsn,
		Alert: func(_ context.Context, al archive.Alert) {
			e.mu.Lock()
			e.alerts = append(e.alerts, al)
			e.mu.Unlock()
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.a = a
}

// operatorKeys is e.op's public key, nil without e.op.
func (e *env) operatorKeys() []ed25519.PublicKey {
	if e.op == nil {
		return nil
	}
	return []ed25519.PublicKey{e.op.Public().(ed25519.PublicKey)}
}

// quarLimits are e.quar, every refusal alerting unless an interval is set.
func (e *env) quarLimits() archive.QuarantineLimits {
	l := e.quar
	if l.AlertInterval == 0 {
		l.AlertInterval = -1
	}
	return l
}

// engineName is the archive log's engine under test.
func (e *env) engineName() string { return cmp.Or(e.engine, os.Getenv("EDGESEAL_TEST_LOG_ENGINE")) }

func (e *env) reopen() {
	e.t.Helper()
	if err := e.a.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.a = nil
	e.open()
}

func (e *env) alertFor(digest string) (archive.Alert, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, al := range slices.Backward(e.alerts) {
		if al.BundleDigest == digest {
			return al, true
		}
	}
	return archive.Alert{}, false
}

// approve enrolls and approves the chain's device.
func (e *env) approve(c *bundletest.Chain) {
	e.t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.approveTrust(raw)
}

// approveTrust enrolls and approves the device of the trust file raw and
// returns its site and name.
func (e *env) approveTrust(raw []byte) (site, device string) {
	e.t.Helper()
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := e.t.Context()
	if _, err := e.a.Devices().Enroll(ctx, req); err != nil {
		e.t.Fatal(err)
	}
	tr := req.ParsedTrust()
	if e.op != nil {
		e.approveSigned(tr.DeviceName(), tr.KeyID, raw, e.op)
		return tr.Site, tr.Device
	}
	if _, err := e.a.Devices().Approve(ctx, tr.DeviceName(), tr.KeyID, "test"); err != nil {
		e.t.Fatal(err)
	}
	return tr.Site, tr.Device
}

// approveSigned approves the pending key of device with a signed
// device.approve statement carrying the DEVICE.json.
func (e *env) approveSigned(device, keyID string, trust []byte, op ed25519.PrivateKey) {
	e.t.Helper()
	e.approveStatement(device, keyID, trust, archive.CompactTrust(trust), op)
}

// approveStatement approves with a device.approve statement whose
// trustFile is trustFile (nil: only the digest, as statements of earlier
// versions).
func (e *env) approveStatement(device, keyID string, trust, trustFile []byte, op ed25519.PrivateKey) {
	e.t.Helper()
	s := &archive.OperatorStatement{Type: archive.StatementDeviceApprove, By: "test", Time: "2026-11-26T02:00:00.000000Z",
		Device: device, KeyID: keyID, TrustDigest: archive.TrustDigest(trust), TrustFile: trustFile, NoActivation: true}
	rec, err := archive.SignOperatorStatement(s, op)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.DeviceStatement(e.t.Context(), rec); err != nil {
		e.t.Fatal(err)
	}
}

func raw(t *testing.T, b *bundle.Bundle) []byte {
	t.Helper()
	r, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// raws is raw of each of bs.
func raws(t *testing.T, bs []*bundle.Bundle) [][]byte {
	t.Helper()
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = raw(t, b)
	}
	return out
}

func digestOf(raw []byte) string { return wire.FormatHash(sha256.Sum256(raw)) }

// accept sends a bundle as its own device and requires a valid receipt.
func (e *env) accept(c *bundletest.Chain, b *bundle.Bundle) []byte {
	e.t.Helper()
	data := raw(e.t, b)
	reply, err := e.a.Receive(e.t.Context(), c.Opts.Site, c.Opts.Device, data)
	if err != nil {
		e.t.Fatalf("bundle refused: %v", err)
	}
	e.checkReceipt(reply, data, c.DeviceName())
	return reply
}

// checkReceipt verifies a receipt: DSSE signature, the signed note of the
// archive log, and the inclusion proof of the bundle's entry.
func (e *env) checkReceipt(reply, data []byte, device string) *archivesig.Receipt {
	e.t.Helper()
	r, err := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		e.t.Fatalf("receipt: %v", err)
	}
	if r.BundleDigest != digestOf(data) || r.Device != device {
		e.t.Fatalf("receipt for %s %s, want %s %s", r.BundleDigest, r.Device, digestOf(data), device)
	}
	if _, err := verifyNote(e.a, r.ArchiveCheckpoint); err != nil {
		e.t.Fatalf("archive checkpoint note: %v", err)
	}
	cp, err := r.ArchiveRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	entry, err := r.Entry().Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	proof := make([][32]byte, len(r.InclusionProof))
	for i, h := range r.InclusionProof {
		copy(proof[i][:], h)
	}
	if err := merkle.VerifyInclusion(proof, r.LogIndex, cp.Size, cp.Root, merkle.LeafHash(entry)); err != nil {
		e.t.Fatalf("inclusion proof: %v", err)
	}
	return r
}

// refused sends data as site/device and requires a rejection naming want.
func (e *env) refused(site, device string, data []byte, want string) *archive.RejectedError {
	e.t.Helper()
	reply, err := e.a.Receive(e.t.Context(), site, device, data)
	var rj *archive.RejectedError
	if !errors.As(err, &rj) {
		e.t.Fatalf("want a rejection naming %s, got reply %d bytes, err %v", want, len(reply), err)
	}
	if !rj.Has(want) {
		e.t.Fatalf("rejection does not name %s: %v", want, err)
	}
	got, verr := sync.VerifyRejection(reply, e.a.KeyID(), e.a.PublicKey())
	if verr != nil {
		e.t.Fatalf("signed rejection: %v", verr)
	}
	if got.BundleDigest != digestOf(data) || !slices.Contains(got.Checks, want) || got.Device != site+"/"+device {
		e.t.Fatalf("signed rejection %+v", got)
	}
	al, ok := e.alertFor(got.BundleDigest)
	if !ok || !slices.Contains(al.Checks, want) {
		e.t.Fatalf("no alert naming %s for %s", want, got.BundleDigest)
	}
	if rj.Quarantine == "" {
		e.t.Fatal("no quarantine path")
	}
	return rj
}

func newChain(t *testing.T, n int, opts bundletest.Options) *bundletest.Chain {
	t.Helper()
	c, err := bundletest.NewChain(t.Context(), nil, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
