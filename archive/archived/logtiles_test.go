package archived_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/internal/testpki"
	"github.com/edgeseal/edgeseal/sync"
)

// TestLogTilesServed runs the archive daemon and follows its log as a
// C2SP tlog-tiles log over its read API with Tessera's client, from HTTP
// alone: the signed checkpoint and hash tiles without a session, the
// entry bundles with an auditor's. Every receipt the device got names an
// entry the client reads from its bundle and proves included in the
// served checkpoint; the receipts' checkpoints and two served ones are
// proved consistent, also across a key rotation. Entry bundles are
// refused without a session (401, in any spelling of their path) and to
// a policy administrator (403); reads of entries are access-logged,
// public reads are not.
//
// It runs on each engine of the archive log (archive_log.engine; MySQL on
// a MariaDB server, internal/mariadbtest).
func TestLogTilesServed(t *testing.T) {
	t.Run("journal", func(t *testing.T) { testLogTilesServed(t, t.TempDir(), "") })
	t.Run("posix", func(t *testing.T) { testLogTilesServed(t, t.TempDir(), "archive_log:\n  engine: posix\n") })
	t.Run("mysql", func(t *testing.T) {
		dir := t.TempDir()
		dsn := mariadbtest.Start(t).Database(t)
		if err := os.WriteFile(filepath.Join(dir, "log.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		testLogTilesServed(t, dir, "archive_log:\n  engine: mysql\n  mysql_dsn_file: log.dsn\n")
	})
}

func testLogTilesServed(t *testing.T, dir, logYAML string) {
	pool := testpki.SelfSigned(t, filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key"), "archive")
	users := api.OpenUsers(filepath.Join(dir, "users.json"))
	for _, u := range []struct{ name, role string }{{"alice", api.RoleAuditor}, {"olga", api.RoleOperator}, {"pat", api.RolePolicyAdmin}} {
		if err := users.Add(u.name, []string{u.role}, testPassword, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e2etest.ArchiveConfig(t, dir, "data_dir: data\n"+logYAML+"mqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"+
		"api:\n  listen: 127.0.0.1:0\n  tls_cert: api.crt\n  tls_key: api.key\n  users_file: users.json\n")
	ar := e2etest.StartArchive(t, cfg)
	ctx := t.Context()
	c, err := bundletest.NewChain(ctx, nil, 6, bundletest.Options{Records: 2})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ar.A, c)
	var mu gosync.Mutex
	var got [][]byte
	receipts := make(chan []byte, 16)
	if err := ar.B.Subscribe(sync.ReceiptsTopic("site1", "dev1"), 1, func(_ string, p []byte) {
		mu.Lock()
		got = append(got, bytes.Clone(p))
		mu.Unlock()
		receipts <- bytes.Clone(p)
	}); err != nil {
		t.Fatal(err)
	}

	alice := newAPIClient(t, ar, pool)
	alice.signIn("alice", testPassword, http.StatusOK)
	base, err := url.Parse("https://" + ar.API.String() + api.LogPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// pub reads with no session; auth with alice's.
	pub, err := client.NewHTTPFetcher(base, alice.hc)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := client.NewHTTPFetcher(base, alice.hc)
	if err != nil {
		t.Fatal(err)
	}
	auth.SetAuthorizationHeader("Bearer " + alice.tok)
	v, err := note.NewVerifier(ar.A.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	origin := archive.DefaultName

	if _, err := pub.ReadCheckpoint(ctx); err == nil {
		t.Fatal("a checkpoint served before any bundle")
	}
	for _, b := range c.Bundles[:3] {
		publish(t, ar, receipts, b)
	}
	cp1, raw1, _, err := client.FetchCheckpoint(ctx, pub.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Bundles[3:] {
		publish(t, ar, receipts, b)
	}
	cp2, raw2, _, err := client.FetchCheckpoint(ctx, pub.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatal(err)
	}
	if cp1.Size < 3 || cp2.Size < cp1.Size+3 || cp2.Size != ar.A.LogSize() {
		t.Fatalf("checkpoints of %d and %d entries, log of %d", cp1.Size, cp2.Size, ar.A.LogSize())
	}

	// Consistency: a tracker at the first checkpoint updates to the
	// second only with a proof built from the public tiles.
	lst, err := client.NewLogStateTracker(ctx, pub.ReadTile, raw1, v, origin, client.UnilateralConsensus(pub.ReadCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if from, _, to, err := lst.Update(ctx); err != nil || !bytes.Equal(from, raw1) || !bytes.Equal(to, raw2) {
		t.Fatalf("tracker update from %d to %d: %v", cp1.Size, cp2.Size, err)
	}

	// Inclusion of every receipt's entry, read from its entry bundle.
	pb, err := client.NewProofBuilder(ctx, cp2.Size, pub.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	rcpts := append([][]byte(nil), got...)
	mu.Unlock()
	if len(rcpts) < len(c.Bundles) {
		t.Fatalf("%d receipts for %d bundles", len(rcpts), len(c.Bundles))
	}
	for _, raw := range rcpts {
		rc, err := archivesig.VerifyReceipt(raw, ar.A.KeyID(), ar.A.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		want, err := rc.Entry().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		eb, err := client.GetEntryBundle(ctx, auth.ReadEntryBundle, rc.LogIndex/layout.EntryBundleWidth, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if e := eb.Entries[rc.LogIndex%layout.EntryBundleWidth]; !bytes.Equal(e, want) {
			t.Fatalf("entry %d served as %s, the receipt names %s", rc.LogIndex, e, want)
		}
		p, err := pb.InclusionProof(ctx, rc.LogIndex)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rc.LogIndex, cp2.Size, rfc6962.DefaultHasher.HashLeaf(want), p, cp2.Hash); err != nil {
			t.Fatalf("inclusion of receipt entry %d: %v", rc.LogIndex, err)
		}
		// The receipt's own checkpoint is a prefix of the served one.
		old, err := rc.ArchiveRoot()
		if err != nil {
			t.Fatal(err)
		}
		cons, err := pb.ConsistencyProof(ctx, old.Size, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp2.Size, cons, old.Root[:], cp2.Hash); err != nil {
			t.Fatalf("receipt checkpoint %d to %d: %v", old.Size, cp2.Size, err)
		}
	}

	// Entry bundles need a session of an auditor or operator.
	if _, err := pub.ReadEntryBundle(ctx, 0, uint8(cp2.Size)); err == nil {
		t.Fatal("entry bundle served without a session")
	}
	entries := "/log/" + layout.EntriesPath(0, uint8(cp2.Size))
	anon := newAPIClient(t, ar, pool)
	for _, p := range []string{entries, strings.Replace(entries, "entries", "%65ntries", 1), strings.Replace(entries, "/tile/", "/tile//", 1),
		strings.Replace(entries, "/tile/", "/./tile/", 1), "/log/tile/entries", "/log/tile/x/../entries/000"} {
		resp, b := anon.do("GET", p, nil)
		if resp.StatusCode == http.StatusOK || bytes.Contains(b, []byte("site1/dev1")) {
			t.Errorf("GET %s without a session: %d %q", p, resp.StatusCode, b)
		}
	}
	anon.get(entries, http.StatusUnauthorized, nil)
	olga := newAPIClient(t, ar, pool)
	olga.signIn("olga", testPassword, http.StatusOK)
	if b := olga.get(entries, http.StatusOK, nil); !bytes.Contains(b, []byte("site1/dev1")) {
		t.Fatalf("entry bundle for the operator: %q", b)
	}
	pat := newAPIClient(t, ar, pool)
	pat.signIn("pat", testPassword, http.StatusOK)
	pat.get(entries, http.StatusForbidden, nil)
	for _, p := range []string{"/log/checkpoint", "/log/" + layout.TilePath(0, 0, uint8(cp2.Size))} {
		if b := anon.get(p, http.StatusOK, nil); len(b) == 0 {
			t.Fatalf("GET %s: empty", p)
		}
		if resp, _ := anon.do("POST", p, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST %s: %d", p, resp.StatusCode)
		}
	}
	anon.get("/log/"+layout.TilePath(0, 0, uint8(cp2.Size+1)), http.StatusNotFound, nil) // beyond the checkpoint

	// Reads of entries are in the access log, public reads are not.
	var acc struct{ Items []archive.AccessItem }
	alice.get("/v1/access?limit=1000", http.StatusOK, &acc)
	seen := map[string]bool{}
	for _, it := range acc.Items {
		if strings.HasPrefix(it.Entry.Target.Path, "/log/") {
			seen[it.Entry.User+" "+it.Entry.Action+" "+it.Entry.Outcome] = true
			if !strings.HasPrefix(it.Entry.Target.Path, "/log/tile/entries/") {
				t.Errorf("public read access-logged: %+v", it.Entry)
			}
		}
	}
	for _, want := range []string{"alice log.entries ok", "olga log.entries ok", "pat log.entries forbidden"} {
		if !seen[want] {
			t.Errorf("access log lacks %q: %v", want, seen)
		}
	}

	// A key rotation: the checkpoint is signed by the new key, and the
	// tree still grows from the one the old key signed.
	next, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.A.RotateKey(ctx, next, time.Hour); err != nil {
		t.Fatal(err)
	}
	v3, err := note.NewVerifier(ar.A.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	raw3, err := pub.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp3, _, _, err := client.FetchCheckpoint(ctx, pub.ReadCheckpoint, v3, origin)
	if err != nil || cp3.Size != cp2.Size+1 {
		t.Fatalf("checkpoint after the rotation: %v, %v", cp3, err)
	}
	pb3, err := client.NewProofBuilder(ctx, cp3.Size, pub.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pb3.ConsistencyProof(ctx, cp2.Size, cp3.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp2.Size, cp3.Size, cons, cp2.Hash, cp3.Hash); err != nil {
		t.Fatalf("consistency across the rotation: %v", err)
	}
	if _, err := note.Open(raw3, note.VerifierList(v)); err == nil {
		t.Fatal("the checkpoint after the rotation opens with the old key")
	}
}
