package archived_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// TestEvidenceByCase: GET /v1/evidence?case=C packs every export of the
// bundles a legal-hold case holds (by the signed hold statements of the
// archive log), narrowed by device and principal when given, and nothing
// once the case is released; GET /v1/exports?case=C lists the same.
func TestEvidenceByCase(t *testing.T) {
	dir := t.TempDir()
	op := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	der, _ := x509.MarshalPKIXPublicKey(op.Public())
	if err := os.WriteFile(filepath.Join(dir, "op.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, pool := apiConfig(t, dir, "operator_keys: [op.pub]\n", apiUser{name: "alice", roles: []string{api.RoleAuditor}})
	ar := e2etest.StartArchive(t, cfg)
	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Records: 4})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(trust)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.Devices().Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	st, err := archive.SignOperatorStatement(&archive.OperatorStatement{Type: archive.StatementDeviceApprove, By: "test", Time: "2026-11-26T02:00:00.000000Z",
		Device: c.DeviceName(), KeyID: c.Trust.KeyID, TrustDigest: archive.TrustDigest(trust), NoActivation: true}, op)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.DeviceStatement(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	publishIndexed(t, ar, c.Bundles)
	alice := newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	all := alice.all("/v1/exports?device=site1/dev1&status=accepted&limit=1000")
	held := all[0].Bundle
	var inHeld int
	for _, e := range all {
		if e.Bundle == held {
			inHeld++
		}
	}
	alice.get("/v1/evidence?case=C-7", http.StatusNotFound, nil)
	if _, err := ar.A.Hold(t.Context(), archive.HoldTarget{Bundle: held}, "C-7", "olga", "subpoena", op, false); err != nil {
		t.Fatal(err)
	}
	if got := alice.all("/v1/exports?case=C-7&status=accepted&limit=2"); len(got) != inHeld {
		t.Fatalf("search of case C-7: %d entries, want %d", len(got), inHeld)
	}
	for _, e := range alice.all("/v1/exports?case=C-7&limit=2") {
		if e.Bundle != held {
			t.Fatalf("search of case C-7 lists an entry of bundle %s", e.Bundle)
		}
	}
	alice.get("/v1/evidence?case=C-7&principal=nobody", http.StatusNotFound, nil)
	resp, body := alice.do("GET", "/v1/evidence?case=C-7&device=site1/dev1&principal="+all[0].Principal, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("evidence of case C-7: %d %s", resp.StatusCode, body)
	}
	pack, err := readclient.ReadPack(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rep := evidence.Verify(pack, proof.Options{Trust: trust, ArchiveKey: ar.A.PublicKey()})
	if !rep.OK() || len(rep.Exports) != inHeld {
		t.Fatalf("pack of case C-7: %d exports, want %d: %v", len(rep.Exports), inHeld, rep.Failed())
	}
	if _, err := ar.A.Hold(t.Context(), archive.HoldTarget{Bundle: held}, "C-7", "olga", "closed", op, true); err != nil {
		t.Fatal(err)
	}
	alice.get("/v1/evidence?case=C-7", http.StatusNotFound, nil)
}
