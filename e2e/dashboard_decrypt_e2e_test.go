package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/browsertest"
)

// TestDashboardDecryptE2E drives the dashboard's Decrypt action in
// headless Chromium against a real archive (process, read API over
// HTTPS, api.decrypt letting the decryptor role decrypt confidential
// exports) fed by a real agent that seals payloads to the archive's
// content key. An auditor with the decryptor role sees the action on the
// encrypted export's page, is told to say why when she gives nothing,
// and with a reason downloads the plaintext: the file is the exported
// bytes, its answer was Cache-Control: no-store, and the export's access
// history shows her decrypt entry with the reason and the plaintext's
// digest. An auditor without the role sees the payload marked encrypted
// but no Decrypt action; the same call forged from his session is
// refused (403) and shows in the history as a refused decrypt entry.
// With EDGESEAL_SCREENSHOTS=DIR the page after the decryption is saved
// there as dashboard-decrypt.png.
func TestDashboardDecryptE2E(t *testing.T) {
	b := browsertest.Start(t)
	data := fmt.Sprintf(e2eInvoice, 42)
	addr := newDecryptRig(t, "dash-decrypt", "conf-dash", data).addr

	base := "https://" + addr + "/"
	page := base + "#/export/" + decryptRigDevice + "/conf-dash"
	signIn := func(user string) {
		b.Type("#user", user)
		b.Type("#password", e2ePassword)
		b.Click("#signin button[type=submit]")
		b.WaitVisible("#who")
		b.WaitText("#who", user)
	}
	openExport := func() {
		b.Navigate(base + "#/fleet")
		b.WaitVisible("#lineage, #fleet-table, #main .empty")
		b.Navigate(page)
		b.WaitVisible("#lineage")
		b.WaitVisible("#payload-encrypted")
		b.WaitVisible("#export-access-table")
	}

	// Alice, an auditor who may decrypt confidential exports.
	b.Navigate(base)
	b.WaitVisible("#signin")
	signIn("alice")
	openExport()
	if got := b.Text("#dl-payload"); !strings.Contains(got, "encrypted") {
		t.Errorf("the payload button of an encrypted export reads %q", got)
	}
	b.Click("#decrypt")
	b.WaitVisible("#decrypt-form")
	b.Click("#decrypt-go") // no why
	b.WaitText("#decrypt-msg", "Say why")
	const why = "tax audit 2026 dashboard"
	b.Type("#decrypt-reason", why)
	name, got := b.Download("#decrypt-go")
	if !bytes.Equal(bytes.TrimSpace(got), []byte(data)) {
		t.Errorf("decrypted download %s: %.80q, want the exported bytes %.80q", name, got, data)
	}
	b.WaitText("#decrypt-msg", "Decrypted and saved")
	row := b.WaitText("#export-access-table tr", "reason: "+why)
	if !strings.Contains(row, "alice") || !strings.Contains(row, "plaintext sha256:") || !strings.Contains(row, "decrypt") {
		t.Errorf("alice's decrypt entry in the export's access history: %q", row)
	}
	var sawNoStore bool
	for _, r := range b.Responses() {
		if strings.Contains(r.URL, "/payload?") && strings.Contains(r.URL, "decrypt=1") && r.Status == http.StatusOK {
			sawNoStore = r.Header["cache-control"] == "no-store"
			if r.Header["x-edgeseal-decrypted"] != "1" {
				t.Errorf("the decrypted answer's headers: %v", r.Header)
			}
		}
	}
	if !sawNoStore {
		t.Errorf("no decrypted payload answered with Cache-Control: no-store: %v", b.Responses())
	}
	b.Shot("dashboard-decrypt.png")
	b.Click("#signout")
	b.WaitText("#signin-error", "You have signed out")

	// Bob, an auditor without the role: no action; a forged call is refused
	// and logged.
	signIn("bob")
	openExport()
	if n := b.Count("#decrypt") + b.Count("#decrypt-form"); n != 0 {
		t.Errorf("bob is offered the Decrypt action (%d elements)", n)
	}
	st := browsertest.Eval[int](b, `fetch("/v1/exports/e2e-site/dev-1/conf-dash/payload?decrypt=1&reason=forged", {credentials: "same-origin"}).then(r => r.status)`)
	if st != http.StatusForbidden {
		t.Errorf("bob's forged decrypt call: HTTP %d, want 403", st)
	}
	openExport()
	row = b.WaitText("#export-access-table tr", "reason: forged")
	if !strings.Contains(row, "bob") || !strings.Contains(row, "refused:") || !strings.Contains(row, "forbidden") {
		t.Errorf("bob's refused decrypt entry in the export's access history: %q", row)
	}
	b.WaitText("#export-access-table tr", "reason: "+why)
	if pr := b.Problems(); len(pr) > 0 {
		t.Errorf("the page reported problems: %v", pr)
	}
}
