package signed

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

func alertStrings(al []Alert) string {
	var s []string
	for _, a := range al {
		s = append(s, a.Kind+" "+a.Subject)
	}
	return strings.Join(s, "|")
}

// TestAlerts: a schema whose bytes change under the same id and a
// destination no earlier version had raise alerts; a renamed schema file
// with the same bytes, a destination seen in an earlier version and the
// first policy do not.
func TestAlerts(t *testing.T) {
	var a Document
	_ = json.Unmarshal(packTestdata(t), &a)
	if al, err := Alerts(nil, nil, &a); err != nil || len(al) != 0 {
		t.Fatalf("first policy: %v %v", al, err)
	}
	seen := map[string]bool{"archive": true, "erp-import": true, "auditor-share": true, "old-share": true}

	// Same policy: nothing.
	if al, err := Alerts(&a, seen, &a); err != nil || len(al) != 0 {
		t.Fatalf("same policy: %v %v", al, err)
	}

	// Schema bytes changed under invoice@1, a new destination, and one
	// that an earlier version had.
	b := withFile(a, "schemas/invoice-1.json", strings.Replace(a.Files["schemas/invoice-1.json"], "{", "{\"description\":\"v2\",", 1))
	b.Policy = strings.Replace(a.Policy, "destinations: [archive, erp-import]", "destinations: [archive, erp-import, exfil-bucket, old-share]", 1)
	al, err := Alerts(&a, seen, &b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := alertStrings(al), custody.AlertSchemaChanged+" invoice@1|"+custody.AlertDestinationNew+" exfil-bucket"; got != want {
		t.Fatalf("alerts\n got %s\nwant %s", got, want)
	}

	// The schema under a new file name, same bytes: no alert.
	c := a
	c.Files = map[string]string{}
	for k, v := range a.Files {
		c.Files[k] = v
	}
	c.Files["schemas/invoice-1b.json"] = a.Files["schemas/invoice-1.json"]
	delete(c.Files, "schemas/invoice-1.json")
	c.Policy = strings.Replace(a.Policy, "invoice@1: schemas/invoice-1.json", "invoice@1: schemas/invoice-1b.json", 1)
	if al, err := Alerts(&a, seen, &c); err != nil || len(al) != 0 {
		t.Fatalf("renamed file, same bytes: %v %v", al, err)
	}

	if ds, err := Destinations(&a); err != nil || strings.Join(ds, ",") != "archive,auditor-share,erp-import" {
		t.Fatalf("destinations %v %v", ds, err)
	}
}

// TestThresholdUnknownSigners: signatures by keys outside the admin set
// are named in the ThresholdError.
func TestThresholdUnknownSigners(t *testing.T) {
	dir := t.TempDir()
	_, admins := testKeys(t, dir, 1, "alice")
	others, _ := testKeys(t, t.TempDir(), 1, "mallory")
	env := signAll(t, packTestdata(t), others...)
	_, err := Verify(env, admins)
	var te *ThresholdError
	if !errors.As(err, &te) || len(te.Unknown) != 1 || te.Unknown[0] != others[0].KeyID() {
		t.Fatalf("unknown signer: %v %+v", err, te)
	}
}
