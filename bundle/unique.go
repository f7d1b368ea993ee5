package bundle

import (
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Bundle format 2 makes a verified bundle's bytes unique: every byte of a
// bundle that verifies is either signed by the device or fully determined
// by what it signed, so two bundles that verify for the same checkpoint
// are the same bytes (docs/formats.md, "Format versions and uniqueness").
//
//   - The seal's predicate type is SealPredicateTypeV2 and its statement
//     names, after data/records.jsonl, every other file of the bundle but
//     the payloads, the two manifests and the seal itself, in sorted
//     order, each with its SHA-256 (SealSubjectNames): bagit.txt,
//     bag-info.txt (so Bagging-Date), attestation/* and keys/*.
//   - The envelope holds exactly one signature, by the sealing key, under
//     its key id, DER with the low s (s <= n/2).
//   - keys/signing.pem is the signing key as a PEM SubjectPublicKeyInfo,
//     for tools that do not read TPMT_PUBLIC.
//
// Payloads are named by their SHA-256, which export records carry; the
// manifests and the tar framing are a function of the files (Read and
// the bagit checks compare them byte for byte).
const (
	SealPredicateTypeV2 = "https://edgeseal.dev/seal/v2"
	SoftwareAgentV2     = "edgeseal bundle/2"

	// maxSubjects bounds the subjects of a seal statement.
	maxSubjects = 32
)

// Bundle format versions.
const (
	FormatV1 = 1 // seal/v1: one subject, bag-info.txt and key files not sealed
	FormatV2 = 2 // seal/v2: every tag file sealed, keys/signing.pem
)

// FormatOf returns the bundle format a seal predicate type names, 0 for
// none.
func FormatOf(predicateType string) int {
	switch predicateType {
	case SealPredicateType:
		return FormatV1
	case SealPredicateTypeV2:
		return FormatV2
	}
	return 0
}

// SealSubjectNames are the files a format 2 seal names, in order:
// data/records.jsonl, then every file of files outside data/ but the
// manifests and the seal, sorted.
func SealSubjectNames(files map[string][]byte) []string {
	var rest []string
	for n := range files {
		if sealedTagFile(n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	return append([]string{PathRecords}, rest...)
}

// sealedTagFile reports whether a format 2 seal names the file after
// data/records.jsonl.
func sealedTagFile(name string) bool {
	return !strings.HasPrefix(name, "data/") && name != PathManifest && name != PathTagManifest && name != PathSeal
}

// checkSubjectsV2 checks the shape of a format 2 statement's subjects.
func checkSubjectsV2(subj []Subject) error {
	if len(subj) == 0 || len(subj) > maxSubjects || subj[0].Name != PathRecords {
		return wire.FormatErr("statement", "want %s and at most %d subjects", PathRecords, maxSubjects-1)
	}
	for i, s := range subj {
		if i > 0 && (!fixedPaths[s.Name] || !sealedTagFile(s.Name) || (i > 1 && s.Name <= subj[i-1].Name)) {
			return wire.FormatErr("statement", "subject %d %.80q", i, s.Name)
		}
		if d := s.Digest["sha256"]; len(s.Digest) != 1 || len(d) != 64 || !strict.IsHex(d) {
			return wire.FormatErr("statement", "subject %.80q digest", s.Name)
		}
	}
	return nil
}

// setSubjects sets the subjects of a format 2 statement to b's files as
// they are; records is the SHA-256 of data/records.jsonl.
func (b *Bundle) setSubjects(st *Statement, records [32]byte) {
	names := SealSubjectNames(b.Files)
	st.Subject = make([]Subject, len(names))
	for i, n := range names {
		sum := records
		if i > 0 {
			sum = sha256.Sum256(b.Files[n])
		}
		st.Subject[i] = Subject{Name: n, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}
	}
}

// SigningPEM is keys/signing.pem for a signing key's TPMT_PUBLIC: its
// SubjectPublicKeyInfo (DER) in one PEM block "PUBLIC KEY", as
// pem.EncodeToMemory writes it.
func SigningPEM(public []byte) ([]byte, error) {
	p, err := attest.ParsePublic(public)
	if err != nil {
		return nil, fmt.Errorf("bundle: signing key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("bundle: signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// p256HalfN is n/2 for P-256, the largest low s.
var p256HalfN = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

type ecdsaSig struct{ R, S *big.Int }

// lowS rewrites a DER ECDSA P-256 signature with s > n/2 as (r, n-s),
// which verifies the same: a format 2 seal carries only the low form, so
// nobody without the key can make a second valid signature from it.
func lowS(der []byte) []byte {
	var sig ecdsaSig
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 || sig.S.Sign() <= 0 {
		return der
	}
	if sig.S.Cmp(p256HalfN) <= 0 || sig.S.Cmp(elliptic.P256().Params().N) >= 0 {
		return der
	}
	sig.S.Sub(elliptic.P256().Params().N, sig.S)
	out, err := asn1.Marshal(sig)
	if err != nil {
		return der
	}
	return out
}

// CheckSealSig requires der to be the DER encoding (minimal, nothing
// after it) of an ECDSA signature, with the low s when low is set.
func CheckSealSig(der []byte, low bool) error {
	var sig ecdsaSig
	rest, err := asn1.Unmarshal(der, &sig)
	n := elliptic.P256().Params().N
	if err != nil || len(rest) != 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.Cmp(n) >= 0 || sig.S.Cmp(n) >= 0 {
		return errors.New("signature is not one DER ECDSA P-256 signature")
	}
	if again, err := asn1.Marshal(sig); err != nil || string(again) != string(der) {
		return errors.New("signature is not in DER")
	}
	if low && sig.S.Cmp(p256HalfN) > 0 {
		return errors.New("signature has the high s (n-s is the same signature): only the low s is accepted")
	}
	return nil
}
