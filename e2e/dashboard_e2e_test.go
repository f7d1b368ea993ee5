package e2e

import (
	"bytes"
	encsv "encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/internal/browsertest"
	"github.com/edgeseal/edgeseal/internal/testpki"
)

// dashboardTTL is the archive's session lifetime in the dashboard test
// (the shortest the config allows): the test waits it out to see an
// expired session refused.
const dashboardTTL = time.Minute

// TestDashboardE2E drives the dashboard in headless Chromium as an
// auditor would, against a running archive (read API over HTTPS) fed by a
// running agent over MQTT. A wrong password and an exporter-only account
// are refused at sign-in; the auditor signs in, sees an export the agent
// journals appear live (no reload) with its bundle in the live feed,
// finds it by its id, follows its lineage (every hop proven), downloads
// its payload (the bytes exported) and its bundle (which `edgeseal
// verify` accepts with the device's trust file), sees those reads in the
// export's access history and every read the page made in the access
// log, looks at the policy charts and the fleet, and once the session has
// expired is sent back to sign-in. With EDGESEAL_SCREENSHOTS=DIR the main
// pages are saved there as PNGs (docs/img holds the committed ones).
func TestDashboardE2E(t *testing.T) {
	needAgent(t)
	b := browsertest.Start(t)

	// The archive: embedded broker, the read API on HTTPS, two accounts.
	dir := t.TempDir()
	cfg := writeArchiveConfig(t, dir, "", "")
	cert, key := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	testpki.SelfSigned(t, cert, key, "127.0.0.1")
	appendFile(t, cfg, fmt.Sprintf("api:\n  listen: 127.0.0.1:0\n  tls_cert: %s\n  tls_key: %s\n  session_ttl: %s\n", cert, key, dashboardTTL))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse battery staple"
	for _, u := range [][]string{{"alice", api.RoleAuditor}, {"eve", api.RoleExporter}} {
		if out, code := runStdin(t, pw+"\n", "archive", "users", "add", u[0], "--role", u[1], "--config", cfg); code != 0 {
			t.Fatalf("archive users add %s: exit %d\n%s", u[0], code, out)
		}
	}
	ar := startArchiveProc(t, cfg)
	addr := ar.logField("read API listening", "addr")
	if addr == "" {
		t.Fatalf("the archive did not log its read API address:\n%s", ar.logs())
	}
	base := "https://" + addr + "/"

	// The agent, enrolled and approved, syncing to the archive.
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64 KiB"})
	dev := enrollFile(t, a)
	if out, code := bundlesCLI(t, "archive", "enroll-file", dev, "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := bundlesCLI(t, "archive", "devices", "approve", "e2e-site/dev-1", "--key", keyIDOf(t, dev), "--no-activation", "--by", "test", "--data-dir", ar.dataDir); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  retry_held: 500ms\n", ar.broker, ar.keyFile+".pub"))
	p := a.start(t, true)
	agentAPI := unixClient(a.socket)

	// Sign-in: refused with a wrong password and for an exporter-only
	// account, then the auditor.
	b.Navigate(base)
	b.WaitVisible("#signin")
	b.Shot("dashboard-signin.png")
	signIn := func(user, password string) {
		b.Type("#user", user)
		b.Type("#password", password)
		b.Click("#signin button[type=submit]")
	}
	signIn("alice", "not the password")
	b.WaitText("#signin-error", "Wrong user name or password")
	signIn("eve", pw)
	b.WaitText("#signin-error", "no archive role")
	signIn("alice", pw)
	signedIn := time.Now()
	b.WaitVisible("#results .empty")
	b.WaitVisible("#live-state.on")
	browsertest.Eval[bool](b, `(window.notReloaded = true)`)

	// Exports at the agent: two accepted, one refused by its policy, one seal.
	payload := fmt.Sprintf(e2eInvoice, 7)
	for _, e := range []struct {
		id, data string
		want     int
	}{{"inv-dash-1", payload, http.StatusCreated}, {"inv-dash-2", fmt.Sprintf(e2eInvoice, 8), http.StatusCreated}, {"inv-dash-bad", `{"invoice_no":"X"}`, http.StatusUnprocessableEntity}} {
		body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":%s}`, e.id, e.data)
		r, err := do(t, agentAPI, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
		if err != nil || r.status != e.want {
			t.Fatalf("export %s: %d %s %v (want %d)", e.id, r.status, r.body, err, e.want)
		}
	}
	if r, err := do(t, agentAPI, "POST", "http://agent/v1/seal", tokOperator, "", nil); err != nil || r.status/100 != 2 {
		t.Fatalf("seal: %d %s %v", r.status, r.body, err)
	}
	// Live: the bundle and its exports show without a reload.
	b.WaitText("#live-list", "bundle accepted")
	b.WaitText("#exports-table", "inv-dash-1")
	b.WaitText("#exports-table", "inv-dash-bad")
	if !browsertest.Eval[bool](b, `window.notReloaded === true`) {
		t.Fatal("the page reloaded to show the new exports")
	}
	b.Shot("dashboard-exports.png")

	// Find the export by its id and follow its lineage.
	b.Type(`#search input[name="export"]`, "inv-dash-1")
	b.Click(`#search button[type=submit]`)
	b.WaitText("#exports-table", "1 exports")
	if n := b.Count("#exports-table tbody tr"); n != 1 {
		t.Fatalf("search by export id: %d rows", n)
	}
	b.Click(`#exports-table a.export-link`)
	b.WaitVisible("#lineage")
	b.WaitText("#lineage", "signed receipt names this bundle")
	if n := b.Count("#lineage li.verified"); n != 7 {
		t.Errorf("lineage: %d of 7 hops proven:\n%s", n, b.Text("#lineage"))
	}
	for _, want := range []string{"n8n", "n8n-prod", "invoices-daily", "e2e-site/dev-1", "write-once until"} {
		b.WaitText("#lineage", want)
	}
	b.Shot("dashboard-export.png")

	// Downloads: the payload is what was exported; the bundle verifies.
	_, got := b.Download("#dl-payload")
	if !bytes.Equal(bytes.TrimSpace(got), []byte(payload)) {
		t.Errorf("payload download: %q, want %q", got, payload)
	}
	name, tarball := b.Download("#dl-bundle")
	bundleFile := filepath.Join(t.TempDir(), "export.bundle.tar")
	if err := os.WriteFile(bundleFile, tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "verify", bundleFile, "--trust", dev); code != 0 || !strings.Contains(out, "VERIFIED") {
		t.Errorf("edgeseal verify of the downloaded bundle %s: exit %d\n%s", name, code, out)
	}
	// The evidence pack of the export on screen: downloaded by the browser,
	// unpacked with the CLI's bounded reader, and verified by the binary.
	_, packTar := b.Download("#dl-pack")
	pack, err := readclient.ReadPack(bytes.NewReader(packTar))
	if err != nil {
		t.Fatalf("evidence pack download: %v", err)
	}
	packDir := filepath.Join(t.TempDir(), "pack")
	if err := pack.WriteDir(packDir); err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "verify", packDir); code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Errorf("edgeseal verify of the downloaded evidence pack: exit %d\n%s", code, out)
	}

	// The export's access history shows those reads after a reload of the view.
	b.Click(`header nav a[data-page="exports"]`)
	b.WaitVisible("#search")
	b.Navigate(base + "#/export/e2e-site/dev-1/inv-dash-1")
	for _, action := range []string{"export.get", "export.payload"} {
		b.WaitText("#export-access-table", action)
	}

	// The refused export: its workflow hop is refused.
	b.Navigate(base + "#/export/e2e-site/dev-1/inv-dash-bad")
	b.WaitText("#lineage", "refused by policy")

	// Policy adherence and fleet.
	b.Click(`header nav a[data-page="policy"]`)
	b.WaitVisible("#chart-status svg.chart rect")
	b.WaitText("#status-table", "1")
	b.WaitText("#policies-table", "e2e-site/dev-1")
	b.Shot("dashboard-policy.png")
	b.Click(`header nav a[data-page="fleet"]`)
	b.WaitText("#fleet-table", "e2e-site/dev-1")
	b.WaitText("#fleet-table", "approved")
	b.Shot("dashboard-fleet.png")

	// Every read of this session is in the access log: the history page's
	// CSV (alice's reads, newest first) holds each action the page made.
	reads := apiReads(b.Responses())
	b.Navigate(base + "#/access?user=alice")
	b.WaitText("#access-table", "export.payload")
	b.Shot("dashboard-access.png")
	_, data := b.Download("#access-table button.csv")
	rows, err := encsv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("access CSV: %v %q", err, data)
	}
	col := slices.Index(rows[0], "Action")
	var actions []string
	for _, r := range rows[1:] {
		actions = append(actions, r[col])
	}
	for _, want := range []string{"session.create", "events.open", "exports.search", "export.get", "bundle.receipt", "export.payload",
		"bundle.get", "access.search", "stats.get", "policies.list", "devices.list", "alerts.list"} {
		if !slices.Contains(actions, want) {
			t.Errorf("access history lacks %s: %v", want, actions)
		}
	}
	// One entry per read the browser made, none missing, none more.
	if len(rows)-1 != len(reads) {
		t.Errorf("alice's access history holds %d reads, the browser made %d:\n%s\n%s", len(rows)-1, len(reads), strings.Join(reads, "\n"), data)
	}
	if slices.ContainsFunc(rows[1:], func(r []string) bool { return !strings.Contains(strings.Join(r, ","), "alice") }) {
		t.Errorf("the filter by person shows other people's reads:\n%s", data)
	}

	// The session expires: the page goes back to sign-in and says so (its
	// event stream ends with the session), a read with the expired
	// session's cookie is refused, and signing in again returns to the
	// page that was open.
	time.Sleep(time.Until(signedIn.Add(dashboardTTL + 2*time.Second)))
	b.WaitText("#signin-error", "session has ended")
	if st := browsertest.Eval[int](b, `fetch("/v1/devices", {credentials: "same-origin"}).then(r => r.status)`); st != http.StatusUnauthorized {
		t.Errorf("a read after the session expired: HTTP %d, want 401", st)
	}
	signIn("alice", pw)
	b.WaitText("#access-table", "session.create")
	if pr := b.Problems(); len(pr) > 0 {
		t.Errorf("the page reported problems: %v", pr)
	}
	p.stop()
}

// apiReads are the browser's calls of the read API that a session made
// (the 401s before sign-in and the refused sign-ins are not reads).
func apiReads(rs []browsertest.Response) []string {
	var out []string
	for _, r := range rs {
		i := strings.Index(r.URL, "/v1/")
		if i < 0 || r.Status == http.StatusUnauthorized || (r.Method == "POST" && r.Status != http.StatusOK) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %d", r.Method, r.URL[i:], r.Status))
	}
	return out
}
