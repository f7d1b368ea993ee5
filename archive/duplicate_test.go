package archive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
)

// doubleSigned is b with its seal's signature twice (manifests
// recomputed): what anyone can make of a bundle in transit.
func doubleSigned(t *testing.T, b *bundle.Bundle) []byte {
	t.Helper()
	m := bundletest.Clone(b)
	env, err := dsse.ParseEnvelope(m.Files[bundle.PathSeal])
	if err != nil {
		t.Fatal(err)
	}
	env.Signatures = append(env.Signatures, env.Signatures[0])
	if m.Files[bundle.PathSeal], err = env.Marshal(); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	return raw(t, m)
}

// requireDuplicate requires the rejection of data to name
// archive.duplicate and, in the signed reply, the first bundle's digest.
func (e *env) requireDuplicate(site, device string, data []byte, first string) {
	e.t.Helper()
	rj := e.refused(site, device, data, archive.CheckDuplicate)
	if !strings.Contains(rj.Error(), first) {
		e.t.Fatalf("rejection does not name the archived bundle %s: %v", first, rj)
	}
	reply, _ := e.a.Receive(e.t.Context(), site, device, data)
	got, err := sync.VerifyRejection(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil || !strings.Contains(got.Reason, first) {
		e.t.Fatalf("signed rejection %+v (%v) does not name %s", got, err, first)
	}
}

// TestMalleatedCopyFirst: a malleated copy of a bundle delivered before
// the genuine one is refused, and the genuine one then gets its receipt
// (before format 2 the copy was receipted and the genuine refused as a
// replay).
func TestMalleatedCopyFirst(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	e.refused(c.Opts.Site, c.Opts.Device, doubleSigned(t, c.Bundles[0]), verify.CheckSealSigners)
	first := e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	// Afterwards: the copy is a malleated duplicate naming the genuine
	// bundle; the genuine bytes again get the same receipt.
	genuine := digestOf(raw(t, c.Bundles[0]))
	e.requireDuplicate(c.Opts.Site, c.Opts.Device, doubleSigned(t, c.Bundles[0]), genuine)
	e.repeated(first, e.accept(c, c.Bundles[0]), raw(t, c.Bundles[0]), c.DeviceName())
	e.reopen() // the checkpoint -> bundle map is rebuilt from the index
	e.requireDuplicate(c.Opts.Site, c.Opts.Device, doubleSigned(t, c.Bundles[0]), genuine)
	if n := e.a.LogSize(); n != 2 {
		t.Fatalf("log size %d, want 2", n)
	}
}

// TestLegacyDuplicateRefused: a format 1 bundle (which did not seal
// bag-info.txt) with its Bagging-Date edited verifies, but once the
// genuine bundle is archived the edited copy is refused as a malleated
// duplicate naming the genuine bundle's digest, not receipted.
func TestLegacyDuplicateRefused(t *testing.T) {
	dir := filepath.Join("..", "bundle", "testdata", "unique")
	tb, err := os.ReadFile(filepath.Join(dir, "v1.trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "v1.tar"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	req, err := archive.ParseEnrollRequest(tb)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trustfile.ParseTrust(tb)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := e.a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Devices().Approve(ctx, tr.Site+"/"+tr.Device, tr.KeyID, "test"); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Read(bytes.NewReader(data), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	edited := bundletest.Clone(b)
	info := string(edited.Files[bundle.PathBagInfo])
	i := strings.Index(info, "Bagging-Date: ")
	edited.Files[bundle.PathBagInfo] = []byte(info[:i] + "Bagging-Date: 1999-12-31" + info[i+len("Bagging-Date: 2006-01-02"):])
	if err := edited.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	if r := verify.Verify(edited, tr, nil); !r.OK() {
		t.Fatalf("the edited format 1 bundle should verify on its own:\n%s", r)
	}
	reply, err := e.a.Receive(ctx, tr.Site, tr.Device, data)
	if err != nil {
		t.Fatal(err)
	}
	e.checkReceipt(reply, data, tr.Site+"/"+tr.Device)
	e.requireDuplicate(tr.Site, tr.Device, raw(t, edited), digestOf(data))
}
