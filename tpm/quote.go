package tpm

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// maxNonce is the largest qualifyingData a TPM accepts (a TPMT_HA).
const maxNonce = 64

// Quote has the AK quote the configured PCRs (SHA-256 bank) with nonce as
// qualifyingData, and returns the quote with the PCR values it covers.
func (t *TPM) Quote(ctx context.Context, nonce []byte) (*Quote, error) {
	if len(nonce) > maxNonce {
		return nil, fmt.Errorf("tpm: quote: nonce of %d bytes, at most %d", len(nonce), maxNonce)
	}
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	if err := t.ensureAK(); err != nil {
		return nil, err
	}
	// A PCR may be extended between the read and the quote; the quote's
	// digest tells, and we try again.
	for range 3 {
		values, err := t.readPCRs(t.pcrs)
		if err != nil {
			return nil, err
		}
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: t.ak, Name: t.akName, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       ecdsaScheme(),
			PCRSelect:      pcrSelection(t.pcrs),
		}.Execute(t.tr)
		if err != nil {
			return nil, fmt.Errorf("tpm: quote: %w", err)
		}
		contents, err := rsp.Quoted.Contents()
		if err != nil {
			return nil, fmt.Errorf("tpm: quote: %w", err)
		}
		qi, err := contents.Attested.Quote()
		if err != nil {
			return nil, fmt.Errorf("tpm: quote: %w", err)
		}
		if !bytes.Equal(qi.PCRDigest.Buffer, pcrDigest(t.pcrs, values)) {
			continue
		}
		msg := slices.Clone(rsp.Quoted.Bytes())
		sig := tpm2.Marshal(&rsp.Signature)
		pcrFile, err := attest.MarshalPCRsFile(t.pcrs, values)
		if err != nil {
			return nil, err
		}
		if err := t.recordClock(msg); err != nil {
			return nil, err
		}
		return &Quote{
			Attest:    msg,
			Signature: sig,
			PCRs:      slices.Clone(t.pcrs),
			Values:    values,
			Files:     QuoteFiles{Msg: slices.Clone(msg), Sig: slices.Clone(sig), PCRs: pcrFile},
		}, nil
	}
	return nil, fmt.Errorf("tpm: quote: PCRs kept changing during the quote")
}
