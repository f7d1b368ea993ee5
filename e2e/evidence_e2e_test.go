package e2e

import (
	"crypto/ed25519"
	"crypto/sha256"
	"github.com/edgeseal/edgeseal/bundle"
	"slices"

	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// custodyMedium writes a device's chain of bundles, each receipted by one
// archive log, in the removable-media layout (DIR/*.bundle.tar and
// DIR/receipts/*.receipt.json), with the trust file and the archive key.
// With forge, the last bundle also holds an export of another principal
// under the id of an export of the first bundle (its payload elsewhere).
type custodyMedium struct {
	dir, bundles, trust, key string
	chain                    *bundletest.Chain
}

func writeMedium(t *testing.T, forge bool) *custodyMedium {
	t.Helper()
	c := bundletest.MustChain(t, 2, bundletest.Options{})
	exps, err := proof.Exports(c.Bundles[0])
	if err != nil {
		t.Fatal(err)
	}
	dup := exps[0]
	body := fmt.Sprintf(`{"app":"nodered","classification":"internal","destination":"archive","exportId":%q,"payload":{"canonicalization":"none","digest":%q,"mediaType":"application/json","size":256},"policy":%q,"purpose":"audit","retention":"7y","schema":"report@2","workflow":"other"}`,
		dup.ExportID, dup.Payload, dup.Policy)
	if forge {
		c.Journal(custody.TypeExport, custody.Actor{Kind: "principal", ID: "nodered-ops", Via: "api"}, []byte(body))
	}
	last, err := c.Next(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundletest.NewAccepted(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Accept(last); err != nil {
		t.Fatal(err)
	}
	m := &custodyMedium{dir: t.TempDir(), chain: c}
	m.bundles = filepath.Join(m.dir, "bundles")
	if err := os.MkdirAll(filepath.Join(m.bundles, "receipts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, raw := range a.Raw {
		name := fmt.Sprintf("%020d.bundle", i)
		writeFile(t, filepath.Join(m.bundles, name+".tar"), raw)
		writeFile(t, filepath.Join(m.bundles, "receipts", name+".receipt.json"), a.Receipts[i])
	}
	m.trust = filepath.Join(m.dir, "DEVICE.json")
	writeFile(t, m.trust, a.Trust)
	m.key = filepath.Join(m.dir, "archive.pub")
	writeFile(t, m.key, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: a.Log.PKIX()}))
	return m
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestProofAndEvidence drives the binary: the proof of one export
// verifies offline (pinned and not), a tampered proof fails naming the
// check, an ambiguous id lists its candidates; the evidence pack of one
// export verifies with `edgeseal verify` and with VERIFY.md's commands
// run as written, holds nothing of any other export, and both fail once
// the payload changed.
func TestProofAndEvidence(t *testing.T) {
	needBinary(t)
	m := writeMedium(t, true)
	id := withPayload(t, m.chain.Bundles[1]).ExportID
	common := []string{"--bundles", m.bundles, "--trust", m.trust, "--archive-key", m.key}

	pf := filepath.Join(m.dir, "proof.json")
	if out, code := runCmd(t, append([]string{"proof", id, "-o", pf}, common...)...); code != 0 {
		t.Fatalf("proof exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{{"verify", pf}, {"verify", pf, "--trust", m.trust, "--archive-key", m.key}} {
		out, code := runCmd(t, args...)
		if code != 0 || !strings.Contains(out, "VERIFIED") || strings.Contains(out, "NOT VERIFIED") {
			t.Fatalf("%v: exit %d:\n%s", args, code, out)
		}
	}
	out, code := runCmd(t, "verify", "--json", repoFile("bundle", "proof", "testdata", "tampered", "payload.changed.json"))
	if code != 1 || !strings.Contains(out, `"name": "payload.digest"`) {
		t.Fatalf("tampered proof: exit %d:\n%s", code, out)
	}
	// The id of the first bundle's first export names two principals' exports.
	dup, _ := proof.Exports(m.chain.Bundles[0])
	out, code = runCmd(t, append([]string{"proof", dup[0].ExportID}, common...)...)
	if code != 2 || !strings.Contains(out, "nodered-ops") || !strings.Contains(out, "n8n-reports") {
		t.Fatalf("ambiguous id: exit %d:\n%s", code, out)
	}
	if out, code := runCmd(t, append([]string{"proof", dup[0].ExportID, "--principal", "n8n-reports"}, common...)...); code != 0 {
		t.Fatalf("narrowed id: exit %d:\n%s", code, out)
	}

	pack := filepath.Join(m.dir, "pack")
	log := filepath.Join(m.dir, "access.log")
	if out, code := runCmd(t, append([]string{"evidence", "--export", id, "-o", pack, "--requester", "auditor", "--access-log", log}, common...)...); code != 0 {
		t.Fatalf("evidence exit %d:\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", pack); code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Fatalf("verify pack exit %d:\n%s", code, out)
	}
	var access map[string]any
	if raw, err := os.ReadFile(log); err != nil || json.Unmarshal(bytes.TrimSpace(raw), &access) != nil || access["actor"] != "auditor" {
		t.Fatalf("access log: %v %s", err, raw)
	}
	// No file of the pack names any other export.
	for _, b := range append(m.chain.Bundles, nil) {
		if b == nil {
			continue
		}
		all, _ := proof.Exports(b)
		for _, o := range all {
			if o.ExportID == id {
				continue
			}
			_ = filepath.WalkDir(pack, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, _ := os.ReadFile(p)
				if bytes.Contains(data, []byte(`"`+o.ExportID+`"`)) || bytes.Contains(data, []byte(`\"`+o.ExportID+`\"`)) {
					t.Errorf("%s names export %s", p, o.ExportID)
				}
				return nil
			})
		}
	}
	if out, err := runVerifyMD(t, pack); err != nil {
		t.Fatalf("VERIFY.md: %v\n%s", err, out)
	}
	payload := filepath.Join(pack, "data", "exports", "001", "payload")
	data, _ := os.ReadFile(payload)
	data[0] ^= 1
	writeFile(t, payload, data)
	if out, err := runVerifyMD(t, pack); err == nil {
		t.Fatalf("VERIFY.md passed a changed payload:\n%s", out)
	}
	if out, code := runCmd(t, "verify", pack); code != 1 || !strings.Contains(out, "pack.bagit") {
		t.Fatalf("verify of a changed pack: exit %d:\n%s", code, out)
	}

	// By device and time, on a chain without the forged export: every
	// export of the chain, archive checkpoints not compared offline.
	m = writeMedium(t, false)
	common = []string{"--bundles", m.bundles, "--trust", m.trust, "--archive-key", m.key}
	all := filepath.Join(m.dir, "all")
	if out, code := runCmd(t, append([]string{"evidence", "--device", m.chain.DeviceName(), "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "-o", all}, common...)...); code != 0 {
		t.Fatalf("evidence by device exit %d:\n%s", code, out)
	}
	out, code = runCmd(t, "verify", all)
	if code != 0 || !strings.Contains(out, "PACK VERIFIED") || !strings.Contains(out, "not compared") {
		t.Fatalf("verify of the device's pack exit %d:\n%s", code, out)
	}
	if out, err := runVerifyMD(t, all); err != nil {
		t.Fatalf("VERIFY.md of the device's pack: %v\n%s", err, out)
	}

	// By legal-hold case: the case held bundles 0 and 1, then released 0.
	digest := func(i int) string {
		raw, err := os.ReadFile(filepath.Join(m.bundles, fmt.Sprintf("%020d.bundle.tar", i)))
		if err != nil {
			t.Fatal(err)
		}
		return wire.FormatHash(sha256.Sum256(raw))
	}
	_, op, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var holds []string
	for i, st := range []*archive.OperatorStatement{
		{Type: archive.StatementHoldSet, By: "alice", Time: "2026-12-01T10:00:00.000000Z", Case: "C-7", Target: &archive.HoldTarget{Device: m.chain.DeviceName()}, Objects: sortedStrings(digest(0), digest(1))},
		{Type: archive.StatementHoldRelease, By: "alice", Time: "2026-12-02T10:00:00.000000Z", Case: "C-7", Target: &archive.HoldTarget{Bundle: digest(0)}, Objects: []string{digest(0)}},
	} {
		raw, err := archive.SignOperatorStatement(st, op)
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, filepath.Join(m.dir, fmt.Sprintf("hold-%d.json", i)))
		writeFile(t, holds[i], raw)
	}
	held := filepath.Join(m.dir, "case")
	if out, code := runCmd(t, append([]string{"evidence", "--case", "C-7", "--holds", holds[0], "--holds", holds[1], "-o", held}, common...)...); code != 0 {
		t.Fatalf("evidence by case exit %d:\n%s", code, out)
	}
	p, err := evidence.ReadDir(held, evidence.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := evidence.ParseIndex(p.Files[evidence.PathIndex])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proof.Exports(m.chain.Bundles[1])
	if len(idx.Exports) != len(want) || idx.Exports[0].Bundle != digest(1) || !strings.Contains(idx.Selection, "C-7") {
		t.Fatalf("case pack holds %+v, want the %d exports of bundle 1", idx.Exports, len(want))
	}
	if rep := evidence.Verify(p, proof.Options{}); !rep.OK() {
		t.Fatalf("case pack: %v", rep.Failed())
	}
}

// withPayload is an export of b whose payload b holds (not purged).
func withPayload(t *testing.T, b *bundle.Bundle) proof.Export {
	t.Helper()
	exps, err := proof.Exports(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exps {
		if _, ok := b.Files[bundle.PayloadDir+strings.TrimPrefix(e.Payload, wire.HashPrefix)]; ok {
			return e
		}
	}
	t.Fatal("no export with its payload")
	return proof.Export{}
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}

var mdBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// runVerifyMD runs every command block of the pack's VERIFY.md in one
// bash, in the pack folder, with this binary as edgeseal on PATH.
func runVerifyMD(t *testing.T, pack string) (string, error) {
	t.Helper()
	for _, tool := range []string{"bash", "openssl", "sha256sum", "tpm2_checkquote"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s (scripts/deps.sh installs openssl and tpm2-tools)", tool)
		}
	}
	md, err := os.ReadFile(filepath.Join(pack, "VERIFY.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, b := range mdBlock.FindAllStringSubmatch(string(md), -1) {
		script.WriteString(b[1])
	}
	cmd := exec.CommandContext(t.Context(), "bash", "-c", script.String())
	cmd.Dir = pack
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(agentBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestEvidenceFromArchiveImport: bundles the real archive imported, with
// the receipts it wrote to the medium (its own log, note and key), give a
// proof and a pack that verify, and VERIFY.md's commands pass as written.
func TestEvidenceFromArchiveImport(t *testing.T) {
	needBinary(t)
	data := t.TempDir()
	c := bundletest.MustChain(t, 3, bundletest.Options{})
	media := t.TempDir()
	bundletest.MustWriteMedia(t, media, c.Bundles...)
	trust := writeTrust(t, c)
	if out, code := runCmd(t, "archive", "enroll-file", trust, "--data-dir", data); code != 0 {
		t.Fatalf("enroll-file exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--data-dir", data); code != 0 {
		t.Fatalf("approve exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "import", media, "--data-dir", data); code != 0 || !strings.Contains(out, "3 accepted, 0 refused") {
		t.Fatalf("import exit %d\n%s", code, out)
	}
	key, _, err := loadOrCreateArchiveKey(filepath.Join(data, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "archive.pub")
	writeFile(t, pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	common := []string{"--bundles", media, "--trust", trust, "--archive-key", pub}

	id := withPayload(t, c.Bundles[2]).ExportID
	pf := filepath.Join(t.TempDir(), "p.json")
	if out, code := runCmd(t, append([]string{"proof", id, "-o", pf}, common...)...); code != 0 {
		t.Fatalf("proof exit %d:\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", pf, "--trust", trust, "--archive-key", pub); code != 0 || strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("verify proof exit %d:\n%s", code, out)
	}
	pack := filepath.Join(t.TempDir(), "pack")
	first := withPayload(t, c.Bundles[0]).ExportID
	if out, code := runCmd(t, append([]string{"evidence", "--export", id, "--export", first, "-o", pack}, common...)...); code != 0 {
		t.Fatalf("evidence exit %d:\n%s", code, out)
	}
	if out, code := runCmd(t, "verify", pack, "--archive-key", pub); code != 0 || !strings.Contains(out, "PACK VERIFIED") {
		t.Fatalf("verify pack exit %d:\n%s", code, out)
	}
	if out, err := runVerifyMD(t, pack); err != nil {
		t.Fatalf("VERIFY.md: %v\n%s", err, out)
	}
}
