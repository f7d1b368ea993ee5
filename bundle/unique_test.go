package bundle_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/binary"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

var updateUnique = flag.Bool("update-unique", false, "write testdata/unique from a software TPM")

// malleation is a change anyone holding a verified bundle can make
// without the device key (manifests recomputed where they would differ),
// and the check that must name it. Check names are literals so that the
// table reads as the contract.
type malleation struct {
	name, want, desc string
	apply            func(t testing.TB, b *bundle.Bundle)
}

var malleations = []malleation{
	{"bagging-date", "seal.subject", "bag-info.txt Bagging-Date edited", func(t testing.TB, b *bundle.Bundle) {
		info := string(b.Files[bundle.PathBagInfo])
		i := strings.Index(info, "Bagging-Date: ")
		if i < 0 {
			t.Fatal("no Bagging-Date")
		}
		b.Files[bundle.PathBagInfo] = []byte(info[:i] + "Bagging-Date: 1999-12-31" + info[i+len("Bagging-Date: 2006-01-02"):])
	}},
	{"bag-agent", "bundle.canonical", "Bag-Software-Agent edited", func(t testing.TB, b *bundle.Bundle) {
		info := string(b.Files[bundle.PathBagInfo])
		for _, v := range []string{"edgeseal bundle/1", "edgeseal bundle/2"} {
			info = strings.Replace(info, v, "edgeseal bundle/9", 1)
		}
		b.Files[bundle.PathBagInfo] = []byte(info)
	}},
	{"sig-extra", "seal.signers", "a garbage signature added to the envelope", func(t testing.TB, b *bundle.Bundle) {
		editEnvelope(t, b, func(e *dsse.Envelope) {
			e.Signatures = append(e.Signatures, dsse.Signature{KeyID: "sha256:" + strings.Repeat("ab", 32), Sig: bytes.Repeat([]byte{7}, 70)})
		})
	}},
	{"sig-duplicate", "seal.signers", "the device's signature twice", func(t testing.TB, b *bundle.Bundle) {
		editEnvelope(t, b, func(e *dsse.Envelope) { e.Signatures = append(e.Signatures, e.Signatures[0]) })
	}},
	{"sig-high-s", "seal.signers", "the signature's s replaced by n-s (verifies the same)", func(t testing.TB, b *bundle.Bundle) {
		editEnvelope(t, b, func(e *dsse.Envelope) { e.Signatures[0].Sig = flipDER(t, e.Signatures[0].Sig) })
	}},
	{"ek-crt-empty", "bundle.canonical", "an empty keys/ek.crt added (the trust file has none)", func(t testing.TB, b *bundle.Bundle) {
		b.Files[bundle.PathEKCert] = []byte{}
	}},
	{"payload-hpke", "bundle.canonical", "a garbage .hpke copy of a referenced payload added", func(t testing.TB, b *bundle.Bundle) {
		for n := range b.Files {
			if strings.HasPrefix(n, bundle.PayloadDir) {
				b.Files[n+".hpke"] = []byte("not sealed by anyone")
				return
			}
		}
		t.Fatal("no payload")
	}},
	{"ak-pem-header", "seal.subject", "keys/ak.pem re-encoded with a PEM header (same key)", func(t testing.TB, b *bundle.Bundle) {
		p := string(b.Files[bundle.PathAKPEM])
		b.Files[bundle.PathAKPEM] = []byte(strings.Replace(p, "-----\n", "-----\nComment: same key\n\n", 1))
	}},
	{"certify-high-s", "seal.subject", "keys/certify.sig with s replaced by n-s (verifies the same)", func(t testing.TB, b *bundle.Bundle) {
		b.Files[bundle.PathCertifySig] = flipTPMTSignature(t, b.Files[bundle.PathCertifySig])
	}},
}

// editEnvelope changes the seal's envelope (not its payload).
func editEnvelope(t testing.TB, b *bundle.Bundle, fn func(*dsse.Envelope)) {
	t.Helper()
	env, err := dsse.ParseEnvelope(b.Files[bundle.PathSeal])
	if err != nil {
		t.Fatal(err)
	}
	fn(env)
	if b.Files[bundle.PathSeal], err = env.Marshal(); err != nil {
		t.Fatal(err)
	}
}

var p256N = elliptic.P256().Params().N

// flipDER returns the DER ECDSA signature (r, n-s).
func flipDER(t testing.TB, der []byte) []byte {
	t.Helper()
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	sig.S.Sub(p256N, sig.S)
	out, err := asn1.Marshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipTPMTSignature returns the TPMT_SIGNATURE (ECDSA) with s := n-s.
func flipTPMTSignature(t testing.TB, b []byte) []byte {
	t.Helper()
	if len(b) < 6 {
		t.Fatal("short TPMT_SIGNATURE")
	}
	rLen := int(binary.BigEndian.Uint16(b[4:]))
	off := 6 + rLen
	if len(b) < off+2 || len(b) != off+2+int(binary.BigEndian.Uint16(b[off:])) {
		t.Fatalf("TPMT_SIGNATURE of %d bytes", len(b))
	}
	s := new(big.Int).SetBytes(b[off+2:])
	s.Sub(p256N, s)
	out := slices.Clone(b[:off])
	out = binary.BigEndian.AppendUint16(out, 32)
	return append(out, s.FillBytes(make([]byte, 32))...)
}

// malleate returns a copy of good with m applied and the manifests
// recomputed.
func malleate(t testing.TB, good *bundle.Bundle, m malleation) *bundle.Bundle {
	t.Helper()
	b := bundletest.Clone(good)
	m.apply(t, b)
	if err := b.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	return b
}

// requireNamed verifies raw (a tar) and requires the check want to fail.
func requireNamed(t *testing.T, raw []byte, trust *trustfile.Trust, want string) {
	t.Helper()
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	r := verify.Verify(b, trust, nil)
	if r.OK() {
		t.Fatalf("verified:\n%s", r)
	}
	c, ok := r.Get(want)
	if !ok || c.OK || c.Skipped {
		t.Fatalf("check %s did not fail on its own; failed %v\n%s", want, r.Failed(), r)
	}
	t.Logf("%s: %s", want, c.Detail)
}

// TestMalleationsRefused: every malleation of a fresh bundle is refused
// by its named check, while the bundle itself verifies.
func TestMalleationsRefused(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 4})
	good := c.Bundles[0]
	if r := verify.Verify(good, c.Trust, nil); !r.OK() {
		t.Fatalf("good bundle:\n%s", r)
	}
	for _, m := range malleations {
		t.Run(m.name, func(t *testing.T) {
			raw, err := malleate(t, good, m).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			requireNamed(t, raw, c.Trust, m.want)
		})
	}
}

// TestMalleationGolden verifies the golden tampered bundles of
// testdata/unique against the golden trust file: good.tar verifies,
// every <malleation>.tar fails its named check.
func TestMalleationGolden(t *testing.T) {
	dir := filepath.Join("testdata", "unique")
	if *updateUnique {
		writeUniqueGolden(t, dir)
	}
	trust := readTrust(t, filepath.Join(dir, "trust.json"))
	raw, err := os.ReadFile(filepath.Join(dir, "good.tar"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if r := verify.Verify(b, trust, nil); !r.OK() {
		t.Fatalf("good.tar:\n%s", r)
	}
	for _, m := range malleations {
		t.Run(m.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, m.name+".tar"))
			if err != nil {
				t.Fatal(err)
			}
			requireNamed(t, raw, trust, m.want)
		})
	}
}

func readTrust(t testing.TB, path string) *trustfile.Trust {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trustfile.ParseTrust(b)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func writeUniqueGolden(t *testing.T, dir string) {
	c, err := bundletest.NewChain(context.Background(), nil, 1, bundletest.Options{Records: 3, PayloadSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b *bundle.Bundle) {
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "trust.json"), tr, 0o644); err != nil {
		t.Fatal(err)
	}
	write("good.tar", c.Bundles[0])
	for _, m := range malleations {
		write(m.name+".tar", malleate(t, c.Bundles[0], m))
	}
	var list strings.Builder
	for _, m := range malleations {
		fmt.Fprintf(&list, "%-22s %-18s %s\n", m.name+".tar", m.want, m.desc)
	}
	if err := os.WriteFile(filepath.Join(dir, "cases.txt"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTarFramingCanonical: every byte of the tar framing is fixed (entry
// order, names, mode, mtime, uid/gid, owner names, checksum, padding,
// end blocks, nothing after them); Read refuses any other spelling of
// the same files.
func TestTarFramingCanonical(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "unique", "good.tar"))
	if err != nil {
		t.Fatal(err)
	}
	field := func(off, n int, v string) func([]byte) []byte {
		return func(b []byte) []byte {
			copy(b[off:off+n], append([]byte(v), make([]byte, n)...)[:n])
			rechecksum(b[:512])
			return b
		}
	}
	for name, edit := range map[string]func([]byte) []byte{
		"mode 0600":       field(100, 8, "0000600\x00"),
		"mtime":           field(136, 12, "00000000001\x00"),
		"uid 1000":        field(108, 8, "0001750\x00"),
		"gid 1000":        field(116, 8, "0001750\x00"),
		"uname":           field(265, 32, "root"),
		"typeflag 0 NUL":  field(156, 1, "\x00"),
		"gnu magic":       field(257, 8, "ustar  \x00"),
		"trailing block":  func(b []byte) []byte { return append(b, make([]byte, 512)...) },
		"one end block":   func(b []byte) []byte { return b[:len(b)-512] },
		"trailing byte":   func(b []byte) []byte { return append(b, 0) },
		"padding nonzero": func(b []byte) []byte { b[512+int(octal(b[124:136]))] = 'x'; return b },
		"order swapped":   swapFirstEntries,
	} {
		t.Run(name, func(t *testing.T) {
			b := edit(slices.Clone(raw))
			if bytes.Equal(b, raw) {
				t.Fatal("edit changed nothing")
			}
			if _, err := bundle.Read(bytes.NewReader(b), bundle.DefaultLimits); err == nil {
				t.Fatal("read a non-canonical tar")
			} else {
				t.Log(err)
			}
		})
	}
}

func octal(f []byte) int64 {
	var n int64
	for _, c := range f {
		if c < '0' || c > '7' {
			break
		}
		n = n<<3 | int64(c-'0')
	}
	return n
}

// rechecksum sets the USTAR header checksum of h.
func rechecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// swapFirstEntries swaps the tar's first two entries.
func swapFirstEntries(b []byte) []byte {
	entry := func(off int) int { return 512 + int((octal(b[off+124:off+136])+511)/512*512) }
	n1 := entry(0)
	n2 := entry(n1)
	out := slices.Concat(b[n1:n1+n2], b[:n1], b[n1+n2:])
	return out
}

// TestLegacyFormat1Verifies: a bundle sealed by the format 1 code (no
// keys/signing.pem, one subject) still verifies, bundle.canonical says
// it is legacy, and a format 2 file added to it is refused.
func TestLegacyFormat1Verifies(t *testing.T) {
	dir := filepath.Join("testdata", "unique")
	trust := readTrust(t, filepath.Join(dir, "v1.trust.json"))
	raw, err := os.ReadFile(filepath.Join(dir, "v1.tar"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Verify(b, trust, nil)
	if !r.OK() {
		t.Fatalf("format 1 bundle:\n%s", r)
	}
	if c, _ := r.Get(verify.CheckBundleCanonical); !strings.Contains(c.Detail, "format 1") {
		t.Errorf("bundle.canonical detail %q", c.Detail)
	}
	for _, m := range malleations {
		if m.want != verify.CheckSealSigners {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			out, err := malleate(t, b, m).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if m.name == "sig-high-s" {
				// Format 1 seals were signed with either s: both verify.
				return
			}
			requireNamed(t, out, trust, m.want)
		})
	}
	pem, err := bundle.SigningPEM(b.Files[bundle.PathSigningPub])
	if err != nil {
		t.Fatal(err)
	}
	added := bundletest.Clone(b)
	added.Files[bundle.PathSigningPEM] = pem
	if err := added.UpdateManifests(); err != nil {
		t.Fatal(err)
	}
	out, err := added.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	requireNamed(t, out, trust, verify.CheckBundleCanonical)
}

// TestSealIsLowS: format 2 seals carry the low s whichever the TPM made.
func TestSealIsLowS(t *testing.T) {
	c := bundletest.MustChain(t, 6, bundletest.Options{Records: 1})
	half := new(big.Int).Rsh(p256N, 1)
	for i, b := range c.Bundles {
		env, err := dsse.ParseEnvelope(b.Files[bundle.PathSeal])
		if err != nil {
			t.Fatal(err)
		}
		var sig struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(env.Signatures[0].Sig, &sig); err != nil {
			t.Fatal(err)
		}
		if sig.S.Cmp(half) > 0 {
			t.Errorf("bundle %d: high s", i)
		}
	}
}

// TestTagFilesExact: bagit.txt and both manifests admit one spelling
// only; another one (manifests otherwise right) fails its bagit check.
func TestTagFilesExact(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{Records: 4})
	good := c.Bundles[0]
	lines := func(b []byte) []string { return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") }
	for _, cs := range []struct {
		name, want string
		edit       func(b *bundle.Bundle)
	}{
		{"bagit.txt CRLF", verify.CheckBagItStructure, func(b *bundle.Bundle) {
			b.Files[bundle.PathBagIt] = []byte(strings.ReplaceAll(bundle.BagItDeclaration, "\n", "\r\n"))
		}},
		{"manifest uppercase hex", verify.CheckBagItManifest, func(b *bundle.Bundle) {
			m := b.Files[bundle.PathManifest]
			b.Files[bundle.PathManifest] = append(bytes.ToUpper(m[:64]), m[64:]...)
		}},
		{"tagmanifest reordered", verify.CheckBagItTagManifest, func(b *bundle.Bundle) {
			l := lines(b.Files[bundle.PathTagManifest])
			l[0], l[1] = l[1], l[0]
			b.Files[bundle.PathTagManifest] = []byte(strings.Join(l, "") + "\n")
		}},
		{"tagmanifest line twice", verify.CheckBagItTagManifest, func(b *bundle.Bundle) {
			l := lines(b.Files[bundle.PathTagManifest])
			b.Files[bundle.PathTagManifest] = []byte(strings.Join(append([]string{l[0]}, l...), "") + "\n")
		}},
		{"tagmanifest one space", verify.CheckBagItTagManifest, func(b *bundle.Bundle) {
			b.Files[bundle.PathTagManifest] = bytes.Replace(b.Files[bundle.PathTagManifest], []byte("  "), []byte(" "), 1)
		}},
	} {
		t.Run(cs.name, func(t *testing.T) {
			b := bundletest.Clone(good)
			cs.edit(b)
			r := verify.Verify(b, c.Trust, nil)
			if ch, _ := r.Get(cs.want); r.OK() || ch.OK {
				t.Fatalf("%s not refused by %s:\n%s", cs.name, cs.want, r)
			}
		})
	}
}
