package archived_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
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
	"golang.org/x/mod/sumdb/note"
)

// TestProofAndEvidenceAPI: an auditor gets the proof the archive builds
// of an export (it verifies pinned to the device's trust file and the
// archive key), the archive log's signed checkpoint and consistency
// proofs (they verify), and evidence packs by export and by device and
// time whose checkpoints are compared by consistency proofs; an operator
// is refused (403, logged); each read is in the access log.
func TestProofAndEvidenceAPI(t *testing.T) {
	dir := t.TempDir()
	cfg, pool := apiConfig(t, dir, "", apiUser{name: "alice", roles: []string{api.RoleAuditor}}, apiUser{name: "olga", roles: []string{api.RoleOperator}})
	ar := e2etest.StartArchive(t, cfg)
	c, err := bundletest.NewChain(t.Context(), nil, 3, bundletest.Options{Records: 4})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, c)
	publishIndexed(t, ar, c.Bundles)
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pin := proof.Options{Trust: trust, ArchiveKey: ar.A.PublicKey()}

	alice := newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	all := alice.all("/v1/exports?device=site1/dev1&status=accepted&order=asc&limit=1000")
	if len(all) < 3 {
		t.Fatalf("%d exports indexed", len(all))
	}
	first, last := all[0], all[len(all)-1]

	// The proof of one export.
	path := "/v1/exports/site1/dev1/" + url.PathEscape(last.Export) + "/proof"
	pr, err := proof.Parse(alice.get(path, http.StatusOK, nil))
	if err != nil {
		t.Fatal(err)
	}
	if rep := proof.Verify(pr, pin); !rep.OK() || pr.ExportID != last.Export {
		t.Fatalf("proof of %s: %v", last.Export, rep.Failed())
	}
	alice.get("/v1/exports/site1/dev1/no-such-export/proof", http.StatusNotFound, nil)
	alice.get(path+"?principal=nobody", http.StatusNotFound, nil)
	alice.get(path+"?nope=1", http.StatusBadRequest, nil)

	// The archive log: checkpoint and consistency.
	size := ar.A.LogSize()
	cp := alice.get("/v1/log/checkpoint", http.StatusOK, nil)
	v, err := note.NewVerifier(ar.A.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		t.Fatalf("log checkpoint: %v", err)
	}
	newCP, err := merkle.ParseAnyCheckpoint([]byte(n.Text))
	if err != nil || newCP.Size != size {
		t.Fatalf("checkpoint %+v of a log of %d: %v", newCP, size, err)
	}
	var cons struct {
		From, To uint64
		Proof    []string
	}
	alice.get(fmt.Sprintf("/v1/log/consistency?from=1&to=%d", size), http.StatusOK, &cons)
	var hs [][32]byte
	for _, h := range cons.Proof {
		d, err := wire.ParseHash(h)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, d)
	}
	oldCP := receiptCheckpoint(t, ar, first.Bundle)
	if oldCP.Size != 1 {
		t.Fatalf("first receipt's checkpoint of size %d", oldCP.Size)
	}
	if err := merkle.VerifyConsistency(hs, 1, size, oldCP.Root, newCP.Root); err != nil {
		t.Fatalf("consistency 1 to %d: %v", size, err)
	}
	for _, q := range []string{"from=0&to=1", "from=2&to=1", fmt.Sprintf("from=1&to=%d", size+1), "from=1", "from=1&to=2&x=3"} {
		code := http.StatusBadRequest
		if strings.Contains(q, fmt.Sprint(size+1)) {
			code = http.StatusNotFound
		}
		alice.get("/v1/log/consistency?"+q, code, nil)
	}

	// Evidence packs: by device and time (every bundle: its checkpoints
	// compared), and by export.
	from := first.Time
	lastAt, err := wire.ParseTime(last.Time)
	if err != nil {
		t.Fatal(err)
	}
	to := wire.FormatTime(lastAt.Add(time.Second))
	for _, q := range []string{"device=site1/dev1&from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to), "export=" + url.QueryEscape(first.Export)} {
		resp, body := alice.do("GET", "/v1/evidence?"+q, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-tar" {
			t.Fatalf("evidence %s: %d %s", q, resp.StatusCode, body)
		}
		pack, err := readclient.ReadPack(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		rep := evidence.Verify(pack, pin)
		if !rep.OK() {
			t.Fatalf("pack %s: %v", q, rep.Failed())
		}
		if strings.HasPrefix(q, "device=") {
			if len(rep.Exports) != len(all) {
				t.Fatalf("pack of %d exports, %d indexed", len(rep.Exports), len(all))
			}
			if !bytes.Contains(pack.Files[evidence.PathIndex], []byte(`"from": 1`)) {
				t.Fatalf("pack without consistency proofs: %s", pack.Files[evidence.PathIndex])
			}
		}
	}
	for _, q := range []string{"", "device=site1/dev1", "export=a&case=b", "device=site1/dev1&from=" + url.QueryEscape(from), "nope=1"} {
		alice.get("/v1/evidence?"+q, http.StatusBadRequest, nil)
	}
	alice.get("/v1/evidence?export=no-such-export", http.StatusNotFound, nil)
	alice.get("/v1/evidence?case=no-such-case", http.StatusNotFound, nil)

	// The operator is refused, and the refusals are logged.
	olga := newAPIClient(t, ar, pool)
	olga.signIn("olga", testPassword, http.StatusOK)
	olga.get(path, http.StatusForbidden, nil)
	olga.get("/v1/evidence?export="+url.QueryEscape(first.Export), http.StatusForbidden, nil)
	olga.get("/v1/log/checkpoint", http.StatusForbidden, nil)

	var acc struct{ Items []archive.AccessItem }
	alice.get("/v1/access?limit=1000", http.StatusOK, &acc)
	got := map[string]bool{}
	for _, it := range acc.Items {
		got[it.Entry.User+" "+it.Entry.Action+" "+it.Entry.Outcome] = true
	}
	for _, want := range []string{"alice export.proof ok", "alice log.checkpoint ok", "alice log.consistency ok", "alice pack ok",
		"olga export.proof forbidden", "olga pack forbidden", "olga log.checkpoint forbidden"} {
		if !got[want] {
			t.Errorf("access log lacks %q", want)
		}
	}
}

// receiptCheckpoint is the archive checkpoint the receipt of bundle names.
func receiptCheckpoint(t *testing.T, ar *e2etest.Archive, bundleDigest string) merkle.Checkpoint {
	t.Helper()
	d, err := wire.ParseHash(bundleDigest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ar.A.Receipt(d)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := archivesig.ParseReceipt(raw)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := rc.ArchiveRoot()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
