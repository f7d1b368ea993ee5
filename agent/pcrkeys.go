package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// maxKeyFile bounds a PEM key file.
const maxKeyFile = 16 << 10

// WritePCRPolicyKey makes an operator's PCR-policy key (`edgeseal tpm
// pcr-key new`): an ECDSA P-256 key for the operator to keep offline
// (path, PKCS#8 PEM, 0600) and its public half (path.pub, PKIX PEM) for
// `tpm enroll --pcr-policy-key`. It never overwrites either file and
// returns the key id.
func WritePCRPolicyKey(path string) (string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", err
	}
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return "", fmt.Errorf("tpm pcr-key new: %s exists; not overwriting a key", p)
		}
	}
	if err := fsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", err
	}
	kid, _ := trustfile.PCRPolicyKeyID(&k.PublicKey)
	return kid, nil
}

// readPEM reads one PEM block of the given type from a bounded file.
func readPEM(path, typ string) ([]byte, error) {
	data, _, err := fsutil.ReadConfig(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	blk, rest := pem.Decode(data)
	if blk == nil || blk.Type != typ || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: want one PEM %s block", path, typ)
	}
	return blk.Bytes, nil
}

// ReadPCRPolicyPublic reads a FILE.pub that `tpm pcr-key new` wrote.
func ReadPCRPolicyPublic(path string) (*ecdsa.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 public key", path)
	}
	return ek, nil
}

// ReadPCRPolicyPrivate reads the private key `tpm pcr-key new` wrote.
func ReadPCRPolicyPrivate(path string) (*ecdsa.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 private key", path)
	}
	return ek, nil
}

// ParsePCRs reads PCR values as FormatPCRs writes them, "0=HEX,2=HEX,...",
// and returns the PCRs in ascending order.
func ParsePCRs(s string) ([]int, map[int][]byte, error) {
	values := map[int][]byte{}
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		p, err := strconv.Atoi(k)
		if !ok || err != nil || p < 0 || p > attest.MaxPCR {
			return nil, nil, fmt.Errorf("pcr item %.80q: want N=HEX with N in 0..%d", item, attest.MaxPCR)
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 32 {
			return nil, nil, fmt.Errorf("pcr %d: want 64 hex digits (a SHA-256 value)", p)
		}
		if _, dup := values[p]; dup {
			return nil, nil, fmt.Errorf("pcr %d given twice", p)
		}
		values[p] = b
	}
	pcrs := make([]int, 0, len(values))
	for p := range values {
		pcrs = append(pcrs, p)
	}
	sort.Ints(pcrs)
	return pcrs, values, nil
}

// FormatPCRs writes PCR values as `edgeseal tpm authorize-pcrs --pcrs`
// reads them: "0=HEX,2=HEX,...", in the order of pcrs.
func FormatPCRs(pcrs []int, values map[int][]byte) string {
	parts := make([]string, len(pcrs))
	for i, p := range pcrs {
		parts[i] = fmt.Sprintf("%d=%x", p, values[p])
	}
	return strings.Join(parts, ",")
}
