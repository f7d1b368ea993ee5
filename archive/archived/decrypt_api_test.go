package archived_test

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/sync"
	"golang.org/x/mod/sumdb/note"
)

// TestDecryptAPI: payloads sealed to the archive's content key are
// decrypted through the read API only for a session whose roles
// api.decrypt allows for the export's classification, with a why: an
// auditor with the decryptor role gets the plaintext of a payload and an
// evidence pack carrying it (the pack verifies, pack.plaintext names
// it); an auditor without it, and an operator, are refused (403); a
// decryption without a why is 400, and so is one of an export the agent
// did not encrypt (whose pack, asked decrypted, carries no plaintext);
// an account with only the decryptor role cannot sign in. Every decryption and every refusal is
// a decrypt entry of the access log (who, roles, remote, the why, the
// plaintext's digest, which is the record's) found in the export's
// access history, and included in the access log's signed checkpoint.
func TestDecryptAPI(t *testing.T) {
	dir := t.TempDir()
	cfg, pool := apiConfigMore(t, dir, "", "  decrypt:\n    - classification: internal\n      roles: [decryptor]\n",
		apiUser{name: "alice", roles: []string{api.RoleAuditor, api.RoleDecryptor}}, apiUser{name: "bob", roles: []string{api.RoleAuditor}},
		apiUser{name: "olga", roles: []string{api.RoleOperator, api.RoleDecryptor}}, apiUser{name: "dora", roles: []string{api.RoleDecryptor}})
	ar := e2etest.StartArchive(t, cfg)
	raw, err := ar.A.NewContentKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	an, err := archivesig.NewArchiveKeys(archive.DefaultName, ar.A.PublicKey()).VerifyContentKey(raw, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ck, err := an.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 1, bundletest.Options{Records: 3, ContentKey: ck})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, c)
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) { receipts <- bytes.Clone(p) }); err != nil {
		t.Fatal(err)
	}
	publish(t, ar, receipts, c.Bundles[0])
	// A device whose agent does not encrypt.
	plain, err := bundletest.NewChain(t.Context(), nil, 1, bundletest.Options{Site: "site2", Device: "dev2", Records: 3})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, plain)
	plainRaw, err := plain.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.Receive(t.Context(), "site2", "dev2", plainRaw); err != nil {
		t.Fatal(err)
	}
	if err := ar.A.WaitIndexed(t.Context(), ar.A.LogSize()); err != nil {
		t.Fatal(err)
	}

	// decryptor alone grants nothing: no session.
	newAPIClient(t, ar, pool).signIn("dora", testPassword, http.StatusForbidden)
	alice := newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	all := alice.all("/v1/exports?device=site1/dev1&status=accepted&order=asc")
	if len(all) == 0 {
		t.Fatal("no export indexed")
	}
	ex := all[0]
	if ex.Classification != "internal" || ex.Payload == nil {
		t.Fatalf("export %+v", ex)
	}
	base := "/v1/exports/site1/dev1/" + url.PathEscape(ex.Export) + "/payload"

	// As stored: the ciphertext, marked sealed.
	resp, sealed := alice.do("GET", base, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Edgeseal-Sealed") != "hpke" || wire.FormatHash(sha256.Sum256(sealed)) == ex.Payload.Digest {
		t.Fatalf("payload as stored: %d %v", resp.StatusCode, resp.Header)
	}
	// Decrypted, with a reason: the plaintext the record names, never
	// to be cached.
	resp, pt := alice.do("GET", base+"?decrypt=1&reason="+url.QueryEscape("quarterly review"), nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Edgeseal-Decrypted") != "1" || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("decrypt: %d %v %s", resp.StatusCode, resp.Header, pt)
	}
	if wire.FormatHash(sha256.Sum256(pt)) != ex.Payload.Digest || !bytes.HasPrefix(pt, []byte("export ")) {
		t.Fatalf("decrypted payload %.40q is not the record's", pt)
	}
	for _, q := range []string{"decrypt=1", "decrypt=yes&reason=x", "reason=x", "decrypt=1&case=a%20b", "decrypt=1&reason=%20"} {
		alice.get(base+"?"+q, http.StatusBadRequest, nil)
	}

	// Refused: an auditor without the role; an operator (not an auditor).
	bob := newAPIClient(t, ar, pool)
	bob.signIn("bob", testPassword, http.StatusOK)
	// The export's answer says the payload is encrypted, and whether the
	// session may decrypt it (alice may, bob may not).
	var one struct{ Encrypted, MayDecrypt bool }
	alice.get(strings.TrimSuffix(base, "/payload"), http.StatusOK, &one)
	if !one.Encrypted || !one.MayDecrypt {
		t.Errorf("alice's export answer: %+v, want encrypted and mayDecrypt", one)
	}
	one = struct{ Encrypted, MayDecrypt bool }{}
	bob.get(strings.TrimSuffix(base, "/payload"), http.StatusOK, &one)
	if !one.Encrypted || one.MayDecrypt {
		t.Errorf("bob's export answer: %+v, want encrypted and not mayDecrypt", one)
	}
	bob.get(base+"?decrypt=1&case=CASE-7", http.StatusForbidden, nil)
	olga := newAPIClient(t, ar, pool)
	olga.signIn("olga", testPassword, http.StatusOK)
	olga.get(base+"?decrypt=1&case=CASE-8", http.StatusForbidden, nil)

	// The evidence pack, decrypted for a case.
	pq := "/v1/evidence?export=" + url.QueryEscape(ex.Export) + "&device=site1/dev1&decrypt=1&reason=" + url.QueryEscape("case CASE-9")
	resp, body := alice.do("GET", pq, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decrypted pack: %d %s\n%s", resp.StatusCode, body, ar.Logs)
	}
	pack, err := readclient.ReadPack(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := c.Trust.Marshal()
	rep := evidence.Verify(pack, proof.Options{Trust: trust, ArchiveKey: ar.A.PublicKey()})
	if !rep.OK() {
		t.Fatalf("decrypted pack: %v", rep.Failed())
	}
	if got := pack.Files["data/exports/001/"+evidence.PlaintextFile]; !bytes.Equal(got, pt) {
		t.Fatalf("the pack's plaintext %.40q", got)
	}
	bob.get(pq, http.StatusForbidden, nil)
	olga.get(pq, http.StatusForbidden, nil) // an operator: refused before the pack is looked at
	// Without decrypt=1 a pack carries no plaintext.
	_, body = alice.do("GET", "/v1/evidence?export="+url.QueryEscape(ex.Export)+"&device=site1/dev1", nil)
	if bytes.Contains(body, pt) {
		t.Fatal("a pack asked without decrypt carries the plaintext")
	}

	// An export the agent did not encrypt: nothing to decrypt (400,
	// logged); a pack of it asked decrypted carries no plaintext and no
	// decrypt entry.
	pe := alice.all("/v1/exports?device=site2/dev2&status=accepted")[0]
	var plainOne map[string]any
	alice.get("/v1/exports/site2/dev2/"+url.PathEscape(pe.Export), http.StatusOK, &plainOne)
	if _, ok := plainOne["encrypted"]; ok || plainOne["mayDecrypt"] != nil {
		t.Errorf("a plain export's answer says encrypted %v, mayDecrypt %v: want neither", plainOne["encrypted"], plainOne["mayDecrypt"])
	}
	alice.get("/v1/exports/site2/dev2/"+url.PathEscape(pe.Export)+"/payload?decrypt=1&reason=x", http.StatusBadRequest, nil)
	resp, body = alice.do("GET", "/v1/evidence?device=site2/dev2&export="+url.QueryEscape(pe.Export)+"&decrypt=1&reason=y", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decrypted pack of a plain export: %d %s", resp.StatusCode, body)
	}
	if pp, err := readclient.ReadPack(bytes.NewReader(body)); err != nil || pp.Files["data/exports/001/"+evidence.PlaintextFile] != nil {
		t.Fatalf("decrypted pack of a plain export: %v", err)
	}
	var plainAcc struct{ Items []archive.AccessItem }
	alice.get("/v1/access?device=site2/dev2&export="+url.QueryEscape(pe.Export), http.StatusOK, &plainAcc)
	n := 0
	for _, it := range plainAcc.Items {
		if it.Entry.Type == archive.DecryptEntryType {
			n++
			if it.Entry.Outcome != "bad_request" || it.Entry.Action != "export.payload" || it.Entry.Decrypt.Refused == "" {
				t.Errorf("decrypt entry of a plain export: %+v %+v", it.Entry, it.Entry.Decrypt)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d decrypt entries for a plain export, want the refused payload's", n)
	}

	// The export's access history holds every decryption and refusal.
	var acc struct{ Items []archive.AccessItem }
	alice.get("/v1/access?device=site1/dev1&export="+url.QueryEscape(ex.Export)+"&limit=1000", http.StatusOK, &acc)
	got := map[string]archive.AccessItem{}
	for _, it := range acc.Items {
		e := it.Entry
		if e.Type != archive.DecryptEntryType {
			continue
		}
		d := e.Decrypt
		got[e.User+" "+e.Action+" "+e.Outcome+" "+d.Case+d.Reason] = it
		if e.Remote == "" || e.Time == "" || e.Target.Export != ex.Export {
			t.Errorf("decrypt entry without who, where or when: %+v", e)
		}
		if e.Outcome == "ok" && (d.Plaintext != ex.Payload.Digest || d.Classification != "internal" || d.KeyID != ck.ID) {
			t.Errorf("decrypt entry %+v does not name the plaintext handed out", d)
		}
		if e.Outcome != "ok" && (d.Refused == "" || d.Plaintext != "") {
			t.Errorf("refused decrypt entry %+v", d)
		}
	}
	for _, want := range []string{"alice export.payload ok quarterly review", "bob export.payload forbidden CASE-7",
		"olga export.payload forbidden CASE-8", "alice pack ok case CASE-9", "bob pack forbidden case CASE-9", "olga pack forbidden case CASE-9"} {
		if _, ok := got[want]; !ok {
			t.Errorf("the export's access history lacks the decrypt entry %q; has %v", want, keys(got))
		}
	}

	// The decryption is in the signed access log.
	it := got["alice export.payload ok quarterly review"]
	var ap archive.AccessProof
	alice.get("/v1/access/proof?index="+strconv.FormatUint(it.Index, 10), http.StatusOK, &ap)
	v, err := note.NewVerifier(ar.A.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Open([]byte(ap.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("access checkpoint: %v", err)
	}
	cp, err := merkle.ParseAnyCheckpoint([]byte(signed.Text))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := wire.ParseHash(ap.Leaf)
	var hs [][32]byte
	for _, h := range ap.Proof {
		d, _ := wire.ParseHash(h)
		hs = append(hs, d)
	}
	if err := merkle.VerifyInclusion(hs, ap.Index, cp.Size, cp.Root, leaf); err != nil || !strings.HasSuffix(cp.Origin, "/access") {
		t.Fatalf("decrypt entry %d not in the signed access log (%s): %v", ap.Index, cp.Origin, err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
