package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/testenv"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestEncryptedEndToEnd: with the archive's content key, a client
// subscribed to edgeseal/# on a real Mosquitto, a copy of the removable
// medium `bundles export` wrote and a copy of the archive's object store
// each hold none of the exported payloads' bytes, while the bundles are
// delivered, verified, opened by the archive and receipted (the outbox
// drains), before and after a content key rotation during the run that
// reaches the running agent through the archive's receipts alone (no
// config edit, no reload): payloads sealed to either key are accepted
// and opened by the archive, and every stored bundle verifies as one
// chain. The rotation is taken by the running archive daemon (no
// restart).
func TestEncryptedEndToEnd(t *testing.T) {
	needAgent(t)
	if mqtttest.Find() == "" {
		testenv.Missing(t, "mosquitto not installed")
	}
	brk := mqtttest.Start(t, nil)
	adir := t.TempDir()
	acfg := writeArchiveConfig(t, adir, brk.URL, "enc-archive")
	keyFile, _ := archiveKeyOf(t, adir)
	a := newAgentDir(t, agentOpts{sealEvery: 100, sealInterval: "250ms", maxBody: "64 KiB"})
	dev := enrollFile(t, a)
	enrollDevices(t, acfg, dev)
	ck := filepath.Join(a.dir, "content-key.json")
	if out, code := bundlesCLI(t, "archive", "content-key", "new", "--config", acfg, "--out", ck); code != 0 {
		t.Fatalf("archive content-key new: exit %d\n%s", code, out)
	}
	appendFile(t, filepath.Join(a.dir, "agent.yaml"), fmt.Sprintf("sync:\n  broker: %s\n  archive_key: %s\n  resend_after: 5s\nencryption:\n  content_key: %s\n", brk.URL, keyFile+".pub", ck))

	sniff := sniffMQTT(t, brk.Port)

	// The payloads: invoices with a marker no other byte sequence has.
	var payloads [][]byte
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	marker := "ZEBRA-" + hex.EncodeToString(mark)
	send := func(n int) {
		t.Helper()
		c := unixClient(a.socket)
		data := strings.Replace(fmt.Sprintf(e2eInvoice, n), "ACME", marker, 1)
		payloads = append(payloads, []byte(data))
		body := fmt.Appendf(nil, `{"id":"enc-%d","workflow":"invoices-daily","app":"n8n","classification":"confidential","destination":"archive","data":%s}`, n, data)
		r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("export %d: %d %s %v", n, r.status, r.body, err)
		}
		if r, err := do(t, c, "POST", "http://agent/v1/seal", tokOperator, "", nil); err != nil || r.status/100 != 2 {
			t.Fatalf("seal: %d %s %v", r.status, r.body, err)
		}
	}

	// 1. The archive is down: the bundle waits in the outbox and goes on
	// removable media.
	ag := a.start(t, true)
	send(1)
	ag.stop()
	media := filepath.Join(t.TempDir(), "usb")
	if out, code := bundlesCLI(t, "bundles", "export", "--config", filepath.Join(a.dir, "agent.yaml"), "--to", media); code != 0 {
		t.Fatalf("bundles export: exit %d\n%s", code, out)
	}
	noPlaintext(t, "the removable medium", media, payloads, marker, true)

	// 2. Archive up: everything is delivered over MQTT and receipted.
	ar := startArchiveProc(t, acfg)
	ag = a.start(t, true)
	send(2)
	sock := unixClient(a.socket)
	drain := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var st agent.Status
			rep, err := do(t, sock, "GET", "http://agent/v1/status", tokAuditor, "", nil)
			if err == nil && rep.status == http.StatusOK && json.Unmarshal(rep.body, &st) == nil && st.Outbox == 0 && st.LastSeal != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox not drained: %s\nagent:\n%s\narchive:\n%s", rep.body, tail(ag.stderr.String()), tail(ar.stderr.String()))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	drain()

	// 3. The content key rotates during the run, the archive daemon
	// running: `content-key rotate` queues the rotation and the daemon
	// takes it (one content.key log entry) without a restart; nobody
	// touches the agent or its config. The next bundle, sealed to the
	// old key, is accepted (the archive keeps the old private key) and
	// its receipt carries the new key's announcement; the agent verifies
	// it under the archive key, journals it and seals the payloads after
	// it to the new key.
	// An escrow is not queued: a request file naming a recovery key
	// would hand the content key to whoever writes the folder.
	rk := filepath.Join(t.TempDir(), "recovery.key")
	if out, code := bundlesCLI(t, "tpm", "recovery-keygen", "--out", rk); code != 0 {
		t.Fatalf("recovery-keygen: %s", out)
	}
	if out, code := bundlesCLI(t, "archive", "content-key", "rotate", "--escrow", rk+".pub", "--config", acfg); code != 2 || !strings.Contains(out, "daemon runs") {
		t.Fatalf("content-key rotate --escrow on the running archive: exit %d\n%s", code, out)
	}
	out, code := bundlesCLI(t, "archive", "content-key", "rotate", "--config", acfg)
	if code != 0 || !strings.Contains(out, "content key 2:") || !strings.Contains(out, "taken by the running daemon") {
		t.Fatalf("archive content-key rotate on the running archive: exit %d\n%s\narchive:\n%s", code, out, tail(ar.stderr.String()))
	}
	if n := strings.Count(ar.stderr.String(), "archive content key announced"); n != 1 {
		t.Fatalf("the running archive announced %d content keys for one rotation:\n%s", n, tail(ar.stderr.String()))
	}
	send(3)
	drain()
	learned := func() bool {
		for _, l := range strings.Split(ag.stderr.String(), "\n") {
			if strings.Contains(l, "payloads are sealed to the archive's content key") && strings.Contains(l, `"seq":2`) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !learned(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not learn the rotated content key from the receipts:\n%s", tail(ag.stderr.String()))
		}
	}
	send(4)
	send(5)
	drain()
	ag.kill()
	ar.stop(t)
	if l := ar.logs(); strings.Contains(l, "archive.decrypt") {
		t.Fatalf("the archive could not open a payload:\n%s", tail(l))
	}
	noPlaintext(t, "the archive's object store", filepath.Join(adir, "data", "objects"), payloads, marker, true)
	// Every bundle the archive stored verifies as one chain, offline,
	// with the real binary; the payloads were sealed to both keys and the
	// agent journaled the key it learned.
	keys := storedChain(t, filepath.Join(adir, "data", "objects"), dev)
	t.Logf("stored bundles: %v", keys)
	if keys["content.key"] != 1 || len(keys) != 3 {
		t.Fatalf("content keys in the stored bundles: %v (want two keys' payloads and one content.key record)", keys)
	}
	seen := sniff()
	if !bytes.Contains(seen, []byte("edgeseal/")) || len(seen) < 4096 {
		t.Fatalf("the subscriber saw %d bytes: no bundle traffic", len(seen))
	}
	for i, p := range payloads {
		if bytes.Contains(seen, p) {
			t.Fatalf("a subscriber to edgeseal/# saw payload %d in plaintext", i+1)
		}
	}
	if bytes.Contains(seen, []byte(marker)) {
		t.Fatal("a subscriber to edgeseal/# saw the payload marker")
	}
}

// noPlaintext fails t when a file under dir holds a payload or the
// marker; want says dir must hold files at all.
func noPlaintext(t *testing.T, what, dir string, payloads [][]byte, marker string, want bool) {
	t.Helper()
	files, hpke := 0, false
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		hpke = hpke || bytes.Contains(b, []byte(".hpke"))
		for i, pl := range payloads {
			if bytes.Contains(b, pl) {
				t.Fatalf("%s: %s holds payload %d in plaintext", what, p, i+1)
			}
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Fatalf("%s: %s holds the payload marker", what, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want && (files == 0 || !hpke) {
		t.Fatalf("%s: %d files, encrypted payloads %v", what, files, hpke)
	}
}

// sniffMQTT subscribes to edgeseal/# (MQTT 3.1.1, QoS 0, written here:
// only sync/ imports the MQTT library) and returns a func that stops it
// and gives every PUBLISH packet it received, topic and payload.
func sniffMQTT(t *testing.T, port int) func() []byte {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	packet := func(typ byte, body []byte) []byte {
		out := []byte{typ}
		n := len(body)
		for {
			b := byte(n % 128)
			n /= 128
			if n > 0 {
				b |= 0x80
			}
			out = append(out, b)
			if n == 0 {
				break
			}
		}
		return append(out, body...)
	}
	connect := append(append(str("MQTT"), 4, 0x02, 0, 60), str("e2e-sniffer")...)
	sub := append(append([]byte{0, 1}, str("edgeseal/#")...), 0)
	if _, err := conn.Write(append(packet(0x10, connect), packet(0x82, sub)...)); err != nil {
		t.Fatal(err)
	}
	var mu gosync.Mutex
	var seen []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var h [1]byte
			if _, err := io.ReadFull(conn, h[:]); err != nil {
				return
			}
			n, mult := 0, 1
			for {
				var b [1]byte
				if _, err := io.ReadFull(conn, b[:]); err != nil {
					return
				}
				n += int(b[0]&0x7f) * mult
				mult *= 128
				if b[0]&0x80 == 0 {
					break
				}
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(conn, body); err != nil {
				return
			}
			if h[0]>>4 == 3 { // PUBLISH
				mu.Lock()
				seen = append(seen, body...)
				mu.Unlock()
			}
		}
	}()
	// Keep the session alive past the keepalive (PINGREQ every 20s).
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(20 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_, _ = conn.Write([]byte{0xc0, 0})
			}
		}
	}()
	var once gosync.Once
	finish := func() []byte {
		once.Do(func() { close(stop); conn.Close(); <-done })
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	t.Cleanup(func() { finish() })
	return finish
}

// storedChain copies every bundle of the archive's object store objs
// into a folder, verifies them as one chain with `edgeseal verify
// --trust dev`, and counts the content key ids their export records name
// (and "content.key": the agent's content.key records).
func storedChain(t *testing.T, objs, dev string) map[string]int {
	t.Helper()
	dir := t.TempDir()
	counts := map[string]int{}
	n := 0
	err := filepath.Walk(objs, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			return nil // not a bundle (the store's own files)
		}
		recs, err := b.Records()
		if err != nil {
			return err
		}
		for _, line := range recs {
			r, err := custody.ParseRecord(line)
			if err != nil {
				return err
			}
			switch r.Type {
			case custody.TypeContentKey:
				counts["content.key"]++
			case custody.TypeExport:
				if e, err := r.ExportBody(); err == nil && e.PayloadCipher != nil {
					counts[e.PayloadCipher.KeyID]++
				}
			}
		}
		n++
		return os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.bundle.tar", n)), raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no bundle in the object store")
	}
	if out, code := runCmd(t, "verify", dir, "--trust", dev, "--chain"); code != 0 || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("the stored bundles do not verify as one chain: exit %d\n%s", code, out)
	}
	return counts
}
