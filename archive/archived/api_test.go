package archived_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/testpki"
	"github.com/edgeseal/edgeseal/sync"
)

// apiClient talks to the read API over HTTPS, trusting the test CA.
type apiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
	tok  string
}

func newAPIClient(t *testing.T, ar *e2etest.Archive, pool *x509.CertPool) *apiClient {
	return &apiClient{t: t, base: "https://" + ar.API.String(), hc: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}}
}

func (c *apiClient) do(method, path string, body []byte) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	req.Header.Set("User-Agent", "edgeseal-test")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

// get requires status and decodes a JSON answer into v (v nil: skip).
func (c *apiClient) get(path string, status int, v any) []byte {
	c.t.Helper()
	resp, b := c.do("GET", path, nil)
	if resp.StatusCode != status {
		c.t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return b
}

func (c *apiClient) signIn(user, password string, status int) *http.Response {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": password})
	resp, b := c.do("POST", "/v1/session", body)
	if resp.StatusCode != status {
		c.t.Fatalf("sign in %s: %d %s, want %d", user, resp.StatusCode, b, status)
	}
	if status == http.StatusOK {
		var s struct{ Token string }
		if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
			c.t.Fatalf("sign in: %s", b)
		}
		c.tok = s.Token
	}
	return resp
}

type entriesPage struct {
	Items []archive.ExportEntry `json:"items"`
	Next  string                `json:"next"`
}

// all follows a search's pages.
func (c *apiClient) all(path string) []archive.ExportEntry {
	c.t.Helper()
	var out []archive.ExportEntry
	q := path
	for range 200 {
		var p entriesPage
		c.get(q, http.StatusOK, &p)
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		q = path + sep + "cursor=" + url.QueryEscape(p.Next)
	}
	c.t.Fatal("paging does not end")
	return nil
}

// publish sends a bundle over the embedded broker until its receipt came.
func publish(t *testing.T, ar *e2etest.Archive, receipts chan []byte, b *bundle.Bundle) {
	t.Helper()
	raw, _ := b.Bytes()
	frames := sync.EncodeChunks(fmt.Sprintf("out-%x", sha256.Sum256(raw)), sha256.Sum256(raw), raw, 16<<10)
	for range 120 {
		for _, f := range frames {
			if err := ar.B.Publish(sync.BundlesTopic("site1", "dev1"), f); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.After(500 * time.Millisecond)
	wait:
		for {
			select {
			case r := <-receipts:
				// The answer to an earlier send of another bundle (its
				// receipt waited for a checkpoint): not this one's.
				if _, rc, err := archivesig.ParseReceipt(r); err == nil && rc.BundleDigest != wire.FormatHash(sha256.Sum256(raw)) {
					continue
				}
				return
			case <-deadline:
				break wait
			}
		}
	}
	t.Fatal("no receipt")
}

// apiUser is an account of the read API's users file.
type apiUser struct {
	name     string
	roles    []string
	disabled bool
}

// apiConfig is the config of an archive daemon in dir with its embedded
// broker and the read API on HTTPS (a self-signed certificate, whose pool
// it returns) with users in its users file (password testPassword); top
// is more of the config file's top level.
func apiConfig(t *testing.T, dir, top string, users ...apiUser) (*config.Config, *x509.CertPool) {
	t.Helper()
	return apiConfigMore(t, dir, top, "", users...)
}

// apiConfigMore is apiConfig with more of the config file's api section
// (its lines indented by two spaces).
func apiConfigMore(t *testing.T, dir, top, apiMore string, users ...apiUser) (*config.Config, *x509.CertPool) {
	t.Helper()
	pool := testpki.SelfSigned(t, filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key"), "archive")
	uf := api.OpenUsers(filepath.Join(dir, "users.json"))
	now := time.Now()
	for _, u := range users {
		if err := uf.Add(u.name, u.roles, testPassword, now); err != nil {
			t.Fatal(err)
		}
		if u.disabled {
			if err := uf.Disable(u.name, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+top+"mqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"+
		"api:\n  listen: 127.0.0.1:0\n  tls_cert: api.crt\n  tls_key: api.key\n  users_file: users.json\n"+apiMore)
	return cfg, pool
}

// receiptsOf subscribes to the receipts of site1/dev1 on the archive's
// broker.
func receiptsOf(t *testing.T, ar *e2etest.Archive) chan []byte {
	t.Helper()
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) { receipts <- bytes.Clone(p) }); err != nil {
		t.Fatal(err)
	}
	return receipts
}

// publishIndexed publishes the bundles, each until its receipt came, and
// waits until the archive's index follows its log.
func publishIndexed(t *testing.T, ar *e2etest.Archive, bundles []*bundle.Bundle) {
	t.Helper()
	receipts := receiptsOf(t, ar)
	for _, b := range bundles {
		publish(t, ar, receipts, b)
	}
	if err := ar.A.WaitIndexed(t.Context(), ar.A.LogSize()); err != nil {
		t.Fatal(err)
	}
}

const testPassword = "correct horse battery staple"

// TestReadAPI runs the archive daemon with the read API on HTTPS (a test
// CA) and bundles arriving over its MQTT broker: anonymous calls, wrong
// passwords, disabled and exporter-only accounts are refused; an auditor
// searches by every field and time range with paging, reads records,
// payloads, bundles and receipts; an operator sees the index but no
// record or payload; every call is in the access log; an accepted
// bundle's event arrives within 2 s; the index survives a restart.
func TestReadAPI(t *testing.T) {
	dir := t.TempDir()
	cfg, pool := apiConfig(t, dir, "", apiUser{name: "alice", roles: []string{api.RoleAuditor}}, apiUser{name: "olga", roles: []string{api.RoleOperator}},
		apiUser{name: "eve", roles: []string{api.RoleExporter}}, apiUser{name: "dave", roles: []string{api.RoleAuditor}, disabled: true})
	ar := e2etest.StartArchive(t, cfg)
	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Records: 6})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, c)
	receipts := receiptsOf(t, ar)
	publish(t, ar, receipts, c.Bundles[0])
	publish(t, ar, receipts, c.Bundles[1])

	anon := newAPIClient(t, ar, pool)
	anon.get("/v1/exports", http.StatusUnauthorized, nil)
	anon.get("/v1/healthz", http.StatusOK, nil)
	anon.signIn("alice", "wrong password!!", http.StatusUnauthorized)
	anon.signIn("nobody", testPassword, http.StatusUnauthorized)
	anon.signIn("dave", testPassword, http.StatusUnauthorized)
	anon.signIn("eve", testPassword, http.StatusForbidden)
	anon.tok = "forged-token"
	anon.get("/v1/exports", http.StatusUnauthorized, nil)

	alice := newAPIClient(t, ar, pool)
	resp := alice.signIn("alice", testPassword, http.StatusOK)
	ck := resp.Header.Get("Set-Cookie")
	for _, want := range []string{api.CookieName + "=", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			t.Errorf("cookie %q lacks %s", ck, want)
		}
	}

	// The event stream, opened before the third bundle.
	events := openEvents(t, alice)
	if err := ar.A.WaitIndexed(t.Context(), ar.A.LogSize()); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	publish(t, ar, receipts, c.Bundles[2])
	// The bundle's entries, then the bundle itself.
	if ev := events.wait(t, archive.EventExportIndexed, 10*time.Second); !strings.Contains(ev, `"status":"accepted"`) {
		t.Errorf("export.indexed %s", ev)
	}
	ev := events.wait(t, archive.EventBundleAccepted, 10*time.Second)
	if d := time.Since(sent); d > 2*time.Second+500*time.Millisecond {
		t.Errorf("bundle.accepted %v after the bundle was sent", d)
	}
	if !strings.Contains(ev, `"device":"site1/dev1"`) {
		t.Errorf("bundle.accepted %s", ev)
	}
	bad, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "payload.changed", Target: 1, Prev: 0})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ar, receipts, bad)
	if ev := events.wait(t, archive.EventAlert, 10*time.Second); !strings.Contains(ev, `"kind":"`+archive.KindRejected+`"`) || strings.Contains(ev, "quarantine") {
		t.Errorf("alert %s", ev)
	}
	events.close()

	all := alice.all("/v1/exports?limit=4&order=asc")
	if len(all) < 12 {
		t.Fatalf("%d entries", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time < all[i-1].Time {
			t.Fatalf("asc order broken at %d", i)
		}
	}
	// The chain's bundles purge one payload each (retention.purge records):
	// those answer 410, the others their bytes. one is an export whose
	// payload is kept.
	var one, next archive.ExportEntry
	gone := 0
	for i, e := range all[1 : len(all)-1] {
		resp, b := alice.do("GET", "/v1/exports/site1/dev1/"+url.PathEscape(e.Export)+"/payload", nil)
		switch {
		case resp.StatusCode == http.StatusGone:
			gone++
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("payload of %s: %d %s", e.Export, resp.StatusCode, b)
		case one.Export == "":
			one, next = e, all[i+2]
		}
	}
	if one.Export == "" || gone == 0 {
		t.Fatalf("payloads: none kept or none purged (%d gone)", gone)
	}
	for _, q := range []string{
		"export=" + one.Export, "device=site1/dev1&export=" + one.Export, "site=site1&export=" + one.Export,
		"workflow=" + one.Workflow + "&export=" + one.Export, "app=" + one.App + "&export=" + one.Export,
		"principal=" + one.Principal + "&export=" + one.Export, "classification=" + one.Classification + "&export=" + one.Export,
		"status=accepted&export=" + one.Export, "bundle=" + one.Bundle + "&export=" + one.Export,
		fmt.Sprintf("log_index=%d&export=%s", *one.LogIndex, one.Export),
		"from=" + url.QueryEscape(one.Time) + "&to=" + url.QueryEscape(next.Time),
	} {
		got := alice.all("/v1/exports?" + q)
		if len(got) != 1 || got[0].Export != one.Export {
			t.Errorf("search %s: %d entries", q, len(got))
		}
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "from=yesterday", "bundle=abc", "status=maybe", "device=nosite", "log_index=-1", "cursor=zz", "export=a&export=b", "nope=1"} {
		alice.get("/v1/exports?"+bad, http.StatusBadRequest, nil)
	}

	// One export: entry, record, payload, bundle, receipt.
	path := "/v1/exports/site1/dev1/" + url.PathEscape(one.Export)
	var ex struct {
		Entry  archive.ExportEntry
		Record json.RawMessage
	}
	alice.get(path, http.StatusOK, &ex)
	if ex.Entry.Export != one.Export || !bytes.Contains(ex.Record, []byte(one.Export)) {
		t.Fatalf("export %s: %+v", one.Export, ex)
	}
	payload := alice.get(path+"/payload", http.StatusOK, nil)
	if sum := sha256.Sum256(payload); "sha256:"+hex.EncodeToString(sum[:]) != one.Payload.Digest {
		t.Fatalf("payload digest %x, want %s", sum, one.Payload.Digest)
	}
	raw := alice.get("/v1/bundles/"+one.Bundle, http.StatusOK, nil)
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != one.Bundle {
		t.Fatal("bundle bytes do not match the digest")
	}
	rc := alice.get("/v1/bundles/"+one.Bundle+"/receipt", http.StatusOK, nil)
	if r, err := archivesig.VerifyReceipt(rc, ar.A.KeyID(), ar.A.PublicKey()); err != nil || r.BundleDigest != one.Bundle {
		t.Fatalf("receipt: %v", err)
	}
	alice.get(path+"/proof", http.StatusOK, nil)
	alice.get("/v1/exports/site1/dev1/no-such-export", http.StatusNotFound, nil)
	alice.get("/v1/bundles/sha256:"+strings.Repeat("0", 64), http.StatusNotFound, nil)
	var devs struct {
		Items []struct {
			Device  string
			Status  string
			Bundles uint64
			Exports uint64
		}
	}
	alice.get("/v1/devices", http.StatusOK, &devs)
	if len(devs.Items) != 1 || devs.Items[0].Device != "site1/dev1" || devs.Items[0].Status != "approved" || devs.Items[0].Bundles != 3 {
		t.Fatalf("devices %+v", devs)
	}
	// The agent's outbox report, published on its alert topic, shows with
	// the device.
	rep := sync.NewOutboxStatus("site1", "dev1", time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC), 4, time.Date(2026, 12, 7, 9, 26, 0, 0, time.UTC))
	report, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.B.Publish(sync.DeviceAlertsTopic("site1", "dev1"), report); err != nil {
		t.Fatal(err)
	}
	var withOutbox struct {
		Items []struct {
			Device string
			Outbox *archive.OutboxStatus
		}
	}
	for range 100 {
		alice.get("/v1/devices", http.StatusOK, &withOutbox)
		if len(withOutbox.Items) == 1 && withOutbox.Items[0].Outbox != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o := withOutbox.Items[0].Outbox; o == nil || o.Depth != 4 || o.AgeSeconds != 240 || o.Oldest != "2026-12-07T09:26:00.000000Z" || o.Received == "" {
		t.Fatalf("outbox of site1/dev1: %+v", o)
	}
	if al := ar.A.DeviceAlerts(""); len(al) != 0 {
		t.Fatalf("an outbox report kept as an alert: %+v", al)
	}
	var st struct {
		Days []archive.DayCounts
	}
	alice.get("/v1/stats?by=status&from=2000-01-01&to=2000-12-31", http.StatusOK, &st)
	if len(st.Days) != 0 {
		t.Fatalf("stats of 2000: %+v", st)
	}
	first, _ := time.Parse(time.RFC3339Nano, all[0].Time)
	alice.get("/v1/stats?by=workflow&from="+first.Format(time.DateOnly)+"&to="+first.AddDate(0, 0, 2).Format(time.DateOnly), http.StatusOK, &st)
	var counted uint64
	for _, d := range st.Days {
		counted += d.Counts[one.Workflow]
	}
	if counted != uint64(len(all)) {
		t.Fatalf("stats by workflow count %d of %d entries: %+v", counted, len(all), st)
	}
	alice.get("/v1/stats?by=nope", http.StatusBadRequest, nil)

	// The operator: the index, the fleet, no record, payload, bundle or access log.
	olga := newAPIClient(t, ar, pool)
	olga.signIn("olga", testPassword, http.StatusOK)
	if got := olga.all("/v1/exports?device=site1/dev1&export=" + one.Export); len(got) != 1 {
		t.Fatalf("operator search: %d", len(got))
	}
	olga.get("/v1/devices", http.StatusOK, nil)
	for _, p := range []string{path, path + "/payload", "/v1/bundles/" + one.Bundle, "/v1/access"} {
		olga.get(p, http.StatusForbidden, nil)
	}

	// Every read is in the access log, the operator's refused ones too.
	var acc struct {
		Items []archive.AccessItem
	}
	alice.get("/v1/access?device=site1/dev1&export="+url.QueryEscape(one.Export)+"&limit=1000", http.StatusOK, &acc)
	var actions []string
	for _, it := range acc.Items {
		e := it.Entry
		actions = append(actions, e.User+" "+e.Action+" "+e.Outcome)
		if e.Remote == "" || e.UserAgent != "edgeseal-test" || e.Time == "" {
			t.Errorf("access entry %+v", e)
		}
	}
	for _, want := range []string{"alice export.get ok", "alice export.payload ok", "alice export.proof ok", "olga export.get forbidden", "olga export.payload forbidden", "alice exports.search ok", "olga exports.search ok"} {
		if !slices.Contains(actions, want) {
			t.Errorf("access log of %s lacks %q: %q", one.Export, want, actions)
		}
	}
	alice.get("/v1/access?user=alice&limit=1000", http.StatusOK, &acc)
	var mine []string
	for _, it := range acc.Items {
		mine = append(mine, it.Entry.Action)
	}
	for _, want := range []string{"session.create", "events.open", "bundle.get", "bundle.receipt", "devices.list", "stats.get", "access.search"} {
		if !slices.Contains(mine, want) {
			t.Errorf("alice's access history lacks %s: %q", want, mine)
		}
	}
	var proof archive.AccessProof
	alice.get(fmt.Sprintf("/v1/access/proof?index=%d", acc.Items[0].Index), http.StatusOK, &proof)
	if proof.Size <= proof.Index || proof.Checkpoint == "" {
		t.Fatalf("access proof %+v", proof)
	}

	// Sign out ends the session.
	if resp, b := alice.do("DELETE", "/v1/session", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign out: %d %s", resp.StatusCode, b)
	}
	alice.get("/v1/session", http.StatusUnauthorized, nil)

	// The index and the access log survive a restart.
	ar.Stop(t)
	ar = e2etest.StartArchive(t, cfg)
	alice = newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	if got := alice.all("/v1/exports?limit=1000"); len(got) != len(all) {
		t.Fatalf("after restart: %d entries, want %d", len(got), len(all))
	}
	alice.get("/v1/access?user=olga", http.StatusOK, &acc)
	if len(acc.Items) == 0 {
		t.Fatal("the access log lost olga's reads across a restart")
	}
}

// sse reads an event stream in the background.
type sse struct {
	events chan [2]string
	resp   *http.Response
}

func openEvents(t *testing.T, c *apiClient) *sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", c.base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", resp, err)
	}
	s := &sse{events: make(chan [2]string, 256), resp: resp}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				typ = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				s.events <- [2]string{typ, v}
			}
		}
	}()
	return s
}

func (s *sse) wait(t *testing.T, typ string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("event stream ended before %s", typ)
			}
			if ev[0] == typ {
				return ev[1]
			}
		case <-deadline:
			t.Fatalf("no %s event in %v", typ, d)
		}
	}
}

func (s *sse) close() { s.resp.Body.Close() }
