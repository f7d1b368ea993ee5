package dashboard

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/browsertest"
)

// The Decrypt action in Chromium against a stand-in of the API: shown
// only for an encrypted export the API says the session may decrypt; it
// will not call without a why, nor with a malformed case id; with a case
// it saves the plaintext and the export's history shows the decrypt
// entry; a refusal is shown with the archive's reason and is in the
// history too; bytes that are not the digest the API names are not
// saved; and nothing breaks the page's policy.
func TestDecryptWithStandInAPI(t *testing.T) {
	api := newFakeAPI()
	plain := []byte(`{"invoice_no":"INV-7","total":12.5}`)
	api.entries = append(api.entries, api.entry("EXP-ENC", 5, "accepted", ""))
	api.plain["EXP-ENC"] = plain
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", Handler(Options{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the browser's cleanup ends its event stream
	b := browsertest.Start(t)

	b.Navigate(srv.URL + "/")
	b.WaitVisible("#signin")
	b.Type("#user", "alice")
	b.Type("#password", "right")
	b.Click("#signin button[type=submit]")
	b.WaitVisible("#exports-table table")

	// A plain export: no action.
	b.Navigate(srv.URL + "/#/export/site1/dev1/EXP-1")
	b.WaitText("#export-access-table", "export.get")
	if n := b.Count("#decrypt") + b.Count("#payload-encrypted"); n != 0 {
		t.Errorf("a plain export offers decryption (%d elements)", n)
	}

	b.Navigate(srv.URL + "/#/export/site1/dev1/EXP-ENC")
	b.WaitText("#export-access-table", "export.get")
	b.WaitVisible("#payload-encrypted")
	if b.Count("#decrypt-form:not([hidden])") != 0 {
		t.Error("the decrypt form shows before the action is chosen")
	}
	b.Click("#decrypt")
	calls := func() int {
		n := 0
		for _, r := range b.Responses() {
			if strings.Contains(r.URL, "/payload?") {
				n++
			}
		}
		return n
	}
	b.Click("#decrypt-go")
	b.WaitText("#decrypt-msg", "Say why")
	b.Type("#decrypt-case", "bad case id")
	b.Click("#decrypt-go")
	b.WaitText("#decrypt-msg", "A case id is")
	if n := calls(); n != 0 {
		t.Errorf("%d payload calls without a valid why", n)
	}

	// With a case id: saved, checked, in the history.
	b.Type("#decrypt-case", "CASE-2026-17")
	name, got := b.Download("#decrypt-go")
	sum := sha256.Sum256(plain)
	if !bytes.Equal(got, plain) || !strings.HasPrefix(name, fmt.Sprintf("%x", sum)) {
		t.Errorf("decrypted download %s: %q", name, got)
	}
	b.WaitText("#decrypt-msg", "checked")
	row := b.WaitText("#export-access-table tr", "case CASE-2026-17")
	if !strings.Contains(row, "decrypt") || !strings.Contains(row, fmt.Sprintf("plaintext sha256:%x", sum)) {
		t.Errorf("decrypt entry row: %q", row)
	}

	// Refused by the archive: its reason is shown, the refusal is in the history.
	b.Type("#decrypt-case", "")
	b.Type("#decrypt-reason", "deny")
	b.Click("#decrypt-go")
	b.WaitText("#decrypt-msg", "Refused: classification secret")
	b.WaitText("#export-access-table tr", "refused: classification secret")

	// Bytes that are not the named digest are not saved.
	b.Type("#decrypt-reason", "tamper")
	b.Click("#decrypt-go")
	b.WaitText("#decrypt-msg", "not saved")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems: %v", p)
	}
}
