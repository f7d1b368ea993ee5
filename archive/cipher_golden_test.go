package archive_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

var updateCipher = flag.Bool("update-cipher", false, "rewrite testdata/cipher (golden encrypted bundles)")

// cipherDirs hold the golden encrypted bundles, by payload cipher
// version: a device's trust file, a good bundle whose payloads are
// sealed to the test content key (derived from contentIKM: a test key,
// never a real one), and copies of it tampered in one way each, with
// the check the archive must name. testdata/cipher was sealed with
// version 1 (one encapsulation per payload), testdata/cipher-v2 with
// version 2 (the payloads of one window share its enc).
var cipherDirs = []struct {
	dir  string
	v1   bool
	want []string // cases verdicts.json must hold
}{
	{"testdata/cipher", true, []string{"cipher.moved", "cipher.suite", "cipher.truncated", bundletest.SwappedCipher, "good"}},
	{"testdata/cipher-v2", false, []string{"cipher.moved", "cipher.suite", "cipher.version", "cipher.truncated", bundletest.SwappedCipher, bundletest.RelabeledCipher, "good"}},
}

var contentIKM = []byte("edgeseal golden content key (test only)")[:32]

type cipherCase struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Bundle      string `json:"bundle"`
	Check       string `json:"check"` // "" for accepted
}

type cipherVerdicts struct {
	Comment string       `json:"comment"`
	Trust   string       `json:"trust"`
	Cases   []cipherCase `json:"cases"`
}

// writeCipherGolden seals a fresh chain to the test content key and
// writes the good bundle, the tampered ones and the verdicts.
func writeCipherGolden(t *testing.T, k *payloadcipher.PrivateKey, cipherDir string, v1 bool) {
	c := newChain(t, 2, bundletest.Options{ContentKey: k.Public(), CipherV1: v1})
	if err := os.MkdirAll(cipherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := fsutil.WriteFileAtomic(filepath.Join(cipherDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write("trust.json", tr)
	version := map[bool]string{true: "1", false: "2"}[v1]
	v := cipherVerdicts{Comment: "Encrypted bundles (docs/formats.md, Payload encryption) the archive accepts or refuses with the named check, each alone after an empty chain; the payloads are sealed with payload cipher version " + version + " to DeriveKeyPair(\"edgeseal golden content key (tes\") of MLKEM768X25519, a test key.",
		Trust: "trust.json"}
	write("good.tar", raw(t, c.Bundles[0]))
	v.Cases = append(v.Cases, cipherCase{Name: "good", Description: "every payload sealed to the content key", Bundle: "good.tar"})
	cases := append([]bundletest.Case{{Kind: bundletest.SwappedCipher, Want: archive.CheckDecrypt, Target: 0, Prev: -1,
		Desc: "two exports of the same size trade their ciphertexts, re-signed: each is bound to the other record"}}, bundletest.CipherCases...)
	if !v1 {
		cases = append(cases, bundletest.Case{Kind: bundletest.RelabeledCipher, Want: archive.CheckDecrypt, Target: 0, Prev: -1,
			Desc: "an export's payload cipher version 2 named 1, re-signed: the version is bound"})
	}
	for _, cs := range cases {
		b, _, err := c.TamperCipher(t.Context(), cs)
		if err != nil {
			t.Fatal(err)
		}
		name := cs.Kind + ".tar"
		write(name, raw(t, b))
		v.Cases = append(v.Cases, cipherCase{Name: cs.Kind, Description: cs.Desc, Bundle: name, Check: cs.Want})
	}
	j, _ := json.MarshalIndent(v, "", "  ")
	write("verdicts.json", append(j, '\n'))
}

// TestCipherGolden: the archive, holding the test content key, refuses
// each golden tampered encrypted bundle (a ciphertext moved to another
// record, a swapped suite id, a ciphertext cut short, two ciphertexts
// traded between records; for version 2 also an unknown version and
// version 2 relabeled 1) with the check its verdict names, and accepts
// the good one, for payload cipher versions 1 and 2. -update-cipher
// writes new golden files.
func TestCipherGolden(t *testing.T) {
	for _, d := range cipherDirs {
		t.Run(filepath.Base(d.dir), func(t *testing.T) { cipherGolden(t, d.dir, d.v1, d.want) })
	}
}

func cipherGolden(t *testing.T, cipherDir string, v1 bool, wantCases []string) {
	k, err := payloadcipher.DeriveKey(contentIKM)
	if err != nil {
		t.Fatal(err)
	}
	if *updateCipher {
		writeCipherGolden(t, k, cipherDir, v1)
	}
	vb, err := os.ReadFile(filepath.Join(cipherDir, "verdicts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v cipherVerdicts
	if err := json.Unmarshal(vb, &v); err != nil {
		t.Fatal(err)
	}
	for _, want := range wantCases {
		if !strings.Contains(string(vb), `"name": "`+want+`"`) {
			t.Fatalf("verdicts.json lacks %s", want)
		}
	}
	e := newEnv(t)
	// The archive holds the test content key (as content-key new would
	// write it).
	kd := filepath.Join(e.dir, archive.ContentKeyDir)
	if err := os.MkdirAll(kd, 0o700); err != nil {
		t.Fatal(err)
	}
	pemb, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	an, err := archivesig.SignContentKey(&archivesig.ContentKeyAnnouncement{Origin: archive.DefaultName, Seq: 1, Time: "2026-11-26T00:00:00.000000Z"}, k.Public(), e.a.KeyID(), e.key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"1.key": pemb, "1.json": an} {
		if err := os.WriteFile(filepath.Join(kd, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen()
	trust, err := os.ReadFile(filepath.Join(cipherDir, v.Trust))
	if err != nil {
		t.Fatal(err)
	}
	site, device := e.approveTrust(trust)
	var good []byte
	for _, cs := range v.Cases {
		b, err := os.ReadFile(filepath.Join(cipherDir, cs.Bundle))
		if err != nil {
			t.Fatal(err)
		}
		if cs.Check == "" {
			good = b
			continue
		}
		t.Run(cs.Name, func(t *testing.T) {
			rj := e.refused(site, device, b, cs.Check)
			if rj == nil {
				t.Fatal("not refused")
			}
		})
	}
	if good == nil {
		t.Fatal("no good bundle")
	}
	if _, err := e.a.Receive(t.Context(), site, device, good); err != nil {
		t.Fatalf("the good encrypted bundle: %v", err)
	}
}
