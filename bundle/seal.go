package bundle

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Quote is a TPM quote as Seal takes it (SealInput), with the files
// tpm2_checkquote reads; SealQuote is its form in the seal statement.
type Quote struct {
	Attest, Signature []byte
	PCRs              []int
	Values            map[int][]byte
	Files             QuoteFiles // optional; derived from the fields above when empty
}

// QuoteFiles is the tpm2_checkquote layout: Msg (-m), Sig (-s), PCRs (-f).
type QuoteFiles struct{ Msg, Sig, PCRs []byte }

// SealInput is everything a seal binds.
type SealInput struct {
	Origin             string // optional; must equal the checkpoint's origin
	Records            [][]byte
	Payloads           map[[32]byte][]byte // by SHA-256 of the bytes
	Encrypted          map[[32]byte][]byte // ciphertext files (.hpke) by SHA-256 of the bytes
	Checkpoint         []byte              // body text
	PreviousCheckpoint []byte              // nil for the first seal
	Consistency        [][32]byte          // proof previous -> checkpoint
	RangeHashes        [][32]byte          // compact range of the previous tree
	PreviousLeaf       [32]byte            // prev of the first record
	Counter            uint64              // NV counter after increment
	Quote              Quote               // nonce = SHA-256(Checkpoint)
	Identity           custody.Identity
	Signer             dsse.Signer
	Time               time.Time
}

// Seal builds a bundle: records, payloads, the signed seal statement, the
// attestation and key files, and the BagIt manifests.
func Seal(ctx context.Context, in SealInput) (*Bundle, error) {
	cp, err := merkle.ParseCheckpoint(in.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("bundle: seal: %w", err)
	}
	if in.Origin != "" && in.Origin != cp.Origin {
		return nil, fmt.Errorf("bundle: seal: origin %q, checkpoint says %q", in.Origin, cp.Origin)
	}
	var first uint64
	if len(in.PreviousCheckpoint) > 0 {
		prev, err := merkle.ParseCheckpoint(in.PreviousCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("bundle: seal: previous: %w", err)
		}
		first = prev.Size
	}
	if first > cp.Size || cp.Size-first != uint64(len(in.Records)) {
		return nil, fmt.Errorf("bundle: seal: %d records for sizes %d..%d", len(in.Records), first, cp.Size)
	}
	if in.Signer == nil {
		return nil, fmt.Errorf("bundle: seal: no signer")
	}
	qa, err := attest.ParseAttest(in.Quote.Attest)
	if err != nil {
		return nil, fmt.Errorf("bundle: seal: quote: %w", err)
	}
	ak, err := attest.ParsePublic(in.Identity.AKPublic)
	if err != nil {
		return nil, fmt.Errorf("bundle: seal: ak: %w", err)
	}
	akDER, err := x509.MarshalPKIXPublicKey(ak.Key)
	if err != nil {
		return nil, fmt.Errorf("bundle: seal: ak: %w", err)
	}

	b := &Bundle{Files: make(map[string][]byte, len(in.Payloads)+len(in.Encrypted)+20)}
	n := 0
	for _, r := range in.Records {
		n += len(r) + 1
	}
	recs := make([]byte, 0, n)
	for _, r := range in.Records {
		recs = append(recs, r...)
		recs = append(recs, '\n')
	}
	b.Files[PathRecords] = recs
	sums := make(map[string][32]byte, len(in.Payloads)+1)
	for d, data := range in.Payloads {
		p := PayloadPath(d)
		b.Files[p] = data
		sums[p] = d
	}
	for d, data := range in.Encrypted {
		p := PayloadPath(d) + EncryptedPayload
		b.Files[p] = data
		sums[p] = d
	}
	recSum := sha256.Sum256(b.Files[PathRecords])
	sums[PathRecords] = recSum

	files := in.Quote.Files
	if files.Msg == nil {
		files.Msg = in.Quote.Attest
	}
	if files.Sig == nil {
		files.Sig = in.Quote.Signature
	}
	if files.PCRs == nil {
		if files.PCRs, err = attest.MarshalPCRsFile(in.Quote.PCRs, in.Quote.Values); err != nil {
			return nil, fmt.Errorf("bundle: seal: %w", err)
		}
	}
	b.Files[PathQuoteMsg] = files.Msg
	b.Files[PathQuoteSig] = files.Sig
	b.Files[PathQuotePCRs] = files.PCRs
	id := in.Identity
	b.Files[PathSigningPub] = id.SigningPublic
	b.Files[PathAKPub] = id.AKPublic
	b.Files[PathAKPEM] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: akDER})
	b.Files[PathCertifyMsg] = id.Certify.Attest
	b.Files[PathCertifySig] = id.Certify.Signature
	b.Files[PathEKPub] = id.EKPublic
	if len(id.EKCert) > 0 {
		b.Files[PathEKCert] = id.EKCert
	}
	if b.Files[PathSigningPEM], err = SigningPEM(id.SigningPublic); err != nil {
		return nil, fmt.Errorf("bundle: seal: %w", err)
	}
	rng := merkle.ProofBytes(in.RangeHashes)
	proof := merkle.ProofBytes(in.Consistency)
	st := &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: PathRecords, Digest: map[string]string{"sha256": hex.EncodeToString(recSum[:])}}},
		PredicateType: SealPredicateTypeV2,
		Predicate: SealPredicate{
			Checkpoint:         string(in.Checkpoint),
			PreviousCheckpoint: string(in.PreviousCheckpoint),
			ConsistencyProof:   proof,
			RangeHashes:        rng,
			FirstSeq:           first,
			PreviousLeaf:       wire.FormatHash(in.PreviousLeaf),
			Counter:            in.Counter,
			Clock:              qa.Clock,
			Quote:              NewSealQuote(in.Quote.Attest, in.Quote.Signature, in.Quote.PCRs, in.Quote.Values),
			KeyID:              in.Signer.KeyID(),
		},
	}
	b.bagInfo(SoftwareAgentV2, cp.Origin, cp.Size, in.Time)
	b.setSubjects(st, recSum)
	if err := signStatement(ctx, b, st, in.Signer); err != nil {
		return nil, err
	}
	b.manifests(sums)
	return b, nil
}

// SignStatement signs st with s and stores it as the bundle's seal. A
// format 2 statement (SealPredicateTypeV2) first gets bag-info.txt's
// Payload-Oxum brought up to date and its subjects set to the bundle's
// files as they are (SealSubjectNames), and its signature in the low-s
// form. It does not update the manifests (see UpdateManifests).
func SignStatement(ctx context.Context, b *Bundle, st *Statement, s dsse.Signer) error {
	v2 := st.PredicateType == SealPredicateTypeV2
	if v2 {
		if err := b.updateBagInfo(); err != nil {
			return fmt.Errorf("bundle: sign statement: %w", err)
		}
		b.setSubjects(st, sha256.Sum256(b.Files[PathRecords]))
	}
	return signStatement(ctx, b, st, s)
}

// signStatement is SignStatement of a statement ready to sign.
func signStatement(ctx context.Context, b *Bundle, st *Statement, s dsse.Signer) error {
	payload, err := st.Marshal()
	if err != nil {
		return err
	}
	env, err := dsse.SignEnvelope(ctx, s, dsse.PayloadTypeInToto, payload)
	if err != nil {
		return err
	}
	if st.PredicateType == SealPredicateTypeV2 {
		env.Signatures[0].Sig = lowS(env.Signatures[0].Sig)
	}
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	b.Files[PathSeal] = data
	return nil
}
