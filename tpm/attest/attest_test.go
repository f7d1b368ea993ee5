package attest_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/attest/attesttest"
)

func newTPM(t testing.TB) *attesttest.TPM {
	t.Helper()
	tp, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestParsePublicAttributes(t *testing.T) {
	tp := newTPM(t)
	ak, err := attest.ParsePublic(tp.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	if !ak.Restricted || !ak.SignEncrypt || !ak.FixedTPM || ak.Decrypt {
		t.Errorf("ak attributes wrong: %+v", ak)
	}
	if !ak.Key.Equal(&tp.AK.PublicKey) {
		t.Error("ak key differs")
	}
	sk, err := attest.ParsePublic(tp.SigningPublic())
	if err != nil {
		t.Fatal(err)
	}
	if sk.Restricted || sk.UserWithAuth || !sk.FixedParent || !bytes.Equal(sk.AuthPolicy, tp.PolicyDigest()) {
		t.Errorf("signing key attributes wrong: %+v", sk)
	}
	// Name agrees with go-tpm's own computation.
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](tp.SigningPublic())
	if err != nil {
		t.Fatal(err)
	}
	name, err := tpm2.ObjectName(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(name.Buffer, sk.Name) {
		t.Errorf("name %x, go-tpm %x", sk.Name, name.Buffer)
	}
}

func TestParsePublicRejects(t *testing.T) {
	tp := newTPM(t)
	good := tp.AKPublic()
	cases := map[string][]byte{
		"empty":    nil,
		"trailing": append(bytes.Clone(good), 0),
		"short":    good[:len(good)-1],
		"rsa":      append([]byte{0x00, 0x01}, good[2:]...),
		"sha1":     append([]byte{good[0], good[1], 0x00, 0x04}, good[4:]...),
		"offcurve": func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(),
	}
	for name, b := range cases {
		if _, err := attest.ParsePublic(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPolicyPCRDigestMatchesGoTPM(t *testing.T) {
	tp := newTPM(t)
	got, err := attest.PolicyPCRDigest(tp.PCRs, tp.Values)
	if err != nil {
		t.Fatal(err)
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	sel, _ := attest.MarshalPCRSelection(tp.PCRs)
	lsel, err := tpm2.Unmarshal[tpm2.TPMLPCRSelection](sel)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := attest.PCRDigest(tp.PCRs, tp.Values)
	if err := (tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: d}, Pcrs: *lsel}).Update(calc); err != nil {
		t.Fatal(err)
	}
	if want := calc.Hash().Digest; !bytes.Equal(got, want) {
		t.Errorf("policy %x, go-tpm %x", got, want)
	}
	tp.Extend(7, []byte("kernel"))
	moved, _ := attest.PolicyPCRDigest(tp.PCRs, tp.Values)
	if bytes.Equal(moved, got) {
		t.Error("policy did not change with a pcr")
	}
	if _, err := attest.PolicyPCRDigest([]int{2, 0}, tp.Values); err == nil {
		t.Error("unsorted selection accepted")
	}
	if _, err := attest.PolicyPCRDigest([]int{0, 1}, tp.Values); err == nil {
		t.Error("missing value accepted")
	}
}

func TestVerifyCertify(t *testing.T) {
	tp := newTPM(t)
	ak, _ := attest.ParsePublic(tp.AKPublic())
	sk, _ := attest.ParsePublic(tp.SigningPublic())
	msg, sig := tp.Certify(tp.SigningPublic())
	if err := attest.VerifyCertify(ak, msg, sig, sk); err != nil {
		t.Fatalf("good certify: %v", err)
	}
	other := newTPM(t)
	osk, _ := attest.ParsePublic(other.SigningPublic())
	var mm *attest.MismatchError
	if err := attest.VerifyCertify(ak, msg, sig, osk); !errors.As(err, &mm) || mm.Field != "certified name" {
		t.Errorf("other key: %v", err)
	}
	oak, _ := attest.ParsePublic(other.AKPublic())
	var se *attest.SignatureError
	if err := attest.VerifyCertify(oak, msg, sig, sk); !errors.As(err, &se) {
		t.Errorf("other ak: %v", err)
	}
	qmsg, qsig := tp.Quote(make([]byte, 32))
	if err := attest.VerifyCertify(ak, qmsg, qsig, sk); !errors.As(err, &mm) || mm.Field != "type" {
		t.Errorf("quote as certify: %v", err)
	}
}

func TestVerifyQuote(t *testing.T) {
	tp := newTPM(t)
	ak, _ := attest.ParsePublic(tp.AKPublic())
	nonce := sha256.Sum256([]byte("checkpoint"))
	tp.Clock, tp.ResetCount, tp.RestartCount = 5000, 7, 2
	msg, sig := tp.Quote(nonce[:])
	info, err := attest.VerifyQuote(ak, msg, sig, nonce[:], tp.PCRs, tp.Values)
	if err != nil {
		t.Fatal(err)
	}
	if info.Clock != (attest.ClockInfo{Clock: 5000 + tp.ClockStep, ResetCount: 7, RestartCount: 2, Safe: true}) {
		t.Errorf("clock %+v", info.Clock)
	}
	moved := maps.Clone(tp.Values)
	moved[4] = bytes.Repeat([]byte{9}, 32)
	wrongMagic := bytes.Clone(msg)
	wrongMagic[0] ^= 1
	cases := []struct {
		name          string
		msg, sig, non []byte
		pcrs          []int
		values        map[int][]byte
		field         string
		sigErr        bool
	}{
		{"nonce", msg, sig, []byte("other"), tp.PCRs, tp.Values, "nonce", false},
		{"selection", msg, sig, nonce[:], []int{0, 2, 4}, tp.Values, "pcr selection", false},
		{"values", msg, sig, nonce[:], tp.PCRs, moved, "pcr digest", false},
		{"magic", wrongMagic, attesttest.SignAttest(tp.AK, wrongMagic), nonce[:], tp.PCRs, tp.Values, "magic", false},
		{"flipped", wrongMagic, sig, nonce[:], tp.PCRs, tp.Values, "", true},
		{"othersigner", msg, attesttest.SignAttest(tp.SigningKey, msg), nonce[:], tp.PCRs, tp.Values, "", true},
	}
	for _, c := range cases {
		_, err := attest.VerifyQuote(ak, c.msg, c.sig, c.non, c.pcrs, c.values)
		var mm *attest.MismatchError
		var se *attest.SignatureError
		switch {
		case c.sigErr && !errors.As(err, &se):
			t.Errorf("%s: want signature error, got %v", c.name, err)
		case !c.sigErr && (!errors.As(err, &mm) || mm.Field != c.field):
			t.Errorf("%s: want %s mismatch, got %v", c.name, c.field, err)
		}
	}
	cmsg, csig := tp.Certify(tp.SigningPublic())
	if _, err := attest.VerifyQuote(ak, cmsg, csig, nil, tp.PCRs, tp.Values); err == nil {
		t.Error("certify accepted as quote")
	}
}

// TestPCRsFileLayout pins the tpm2-tools layout byte by byte: host C
// structs, little-endian, TPML_PCR_SELECTION of 16 slots of 8 bytes, a
// UINT32 list count, TPML_DIGESTs of 8 slots of 2+64 bytes.
func TestPCRsFileLayout(t *testing.T) {
	values := map[int][]byte{}
	for _, p := range []int{0, 2, 4, 7} {
		values[p] = bytes.Repeat([]byte{byte(0xa0 + p)}, 32)
	}
	want := make([]byte, 4+16*8+4+4+8*66)
	want[0] = 1                           // one bank
	want[4], want[5] = 0x0b, 0x00         // TPM_ALG_SHA256, little-endian
	want[6] = 3                           // sizeofSelect
	want[7] = 1<<0 | 1<<2 | 1<<4 | 1<<7   // pcrSelect[0]
	want[132] = 1                         // one TPML_DIGEST
	want[136] = 4                         // four digests in it
	for i, p := range []int{0, 2, 4, 7} { // TPM2B_DIGEST{size, buffer[64]}
		off := 140 + i*66
		want[off] = 32
		copy(want[off+2:], values[p])
	}
	got, err := attest.MarshalPCRsFile([]int{0, 2, 4, 7}, values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("layout differs:\n got %x\nwant %x", got, want)
	}
	bad := bytes.Clone(want)
	bad[140+66-1] = 1 // non-zero padding after a digest
	if _, _, err := attest.ParsePCRsFile(bad); err == nil {
		t.Error("non-zero padding accepted")
	}
	bad = bytes.Clone(want)
	bad[0] = 2 // two banks
	if _, _, err := attest.ParsePCRsFile(bad); err == nil {
		t.Error("two banks accepted")
	}
}

func TestPCRsFileRoundTrip(t *testing.T) {
	tp := newTPM(t)
	for _, p := range []int{1, 3, 5, 6, 8, 9, 10, 11, 12, 23} {
		sum := sha256.Sum256([]byte{byte(p)})
		tp.Values[p] = sum[:]
	}
	for _, pcrs := range [][]int{{0, 2, 4, 7}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {23}} {
		b, err := attest.MarshalPCRsFile(pcrs, tp.Values)
		if err != nil {
			t.Fatal(err)
		}
		gotPCRs, got, err := attest.ParsePCRsFile(b)
		if err != nil {
			t.Fatalf("%v: %v", pcrs, err)
		}
		if attest.FormatPCRs(gotPCRs, got) != attest.FormatPCRs(pcrs, tp.Values) {
			t.Errorf("round trip %v: %s", pcrs, attest.FormatPCRs(gotPCRs, got))
		}
		if _, _, err := attest.ParsePCRsFile(append(b, 0)); err == nil {
			t.Error("trailing byte accepted")
		}
		if _, _, err := attest.ParsePCRsFile(b[:len(b)-1]); err == nil {
			t.Error("truncated file accepted")
		}
	}
}
