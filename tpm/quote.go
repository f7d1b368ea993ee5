package tpm

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
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
		attest, err := rsp.Quoted.Contents()
		if err != nil {
			return nil, fmt.Errorf("tpm: quote: %w", err)
		}
		qi, err := attest.Attested.Quote()
		if err != nil {
			return nil, fmt.Errorf("tpm: quote: %w", err)
		}
		if !bytes.Equal(qi.PCRDigest.Buffer, pcrDigest(t.pcrs, values)) {
			continue
		}
		msg := slices.Clone(rsp.Quoted.Bytes())
		sig := tpm2.Marshal(&rsp.Signature)
		pcrFile, err := MarshalCheckquotePCRs(t.pcrs, values)
		if err != nil {
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

// Layout of tpm2-tools' "serialized" PCR file (tpm2_quote -o, read by
// tpm2_checkquote -f): the host C structs, little-endian.
const (
	cqBanks      = 16 // TPM2_NUM_PCR_BANKS
	cqSelectMax  = 4  // TPM2_PCR_SELECT_MAX
	cqSelSize    = 8  // sizeof(TPMS_PCR_SELECTION): 2+1+4, padded to 8
	cqSelList    = 4 + cqBanks*cqSelSize
	cqDigests    = 8  // digests in a TPML_DIGEST
	cqHASize     = 64 // sizeof(TPMU_HA)
	cqDigestSize = 2 + cqHASize
	cqDigestList = 4 + cqDigests*cqDigestSize
	sha256Alg    = 0x000B
)

// MarshalCheckquotePCRs writes SHA-256 PCR values in the serialized layout
// tpm2_quote -o writes and tpm2_checkquote -f reads: a TPML_PCR_SELECTION,
// a UINT32 count, then that many TPML_DIGEST of up to 8 values each.
func MarshalCheckquotePCRs(pcrs []int, values map[int][]byte) ([]byte, error) {
	if err := checkPCRValues(pcrs, values); err != nil {
		return nil, fmt.Errorf("tpm: checkquote pcrs: %w", err)
	}
	lists := (len(pcrs) + cqDigests - 1) / cqDigests
	out := make([]byte, cqSelList+4+lists*cqDigestList)
	le := binary.LittleEndian
	le.PutUint32(out[0:], 1)
	le.PutUint16(out[4:], sha256Alg)
	out[6] = 3
	for _, p := range pcrs {
		out[7+p/8] |= 1 << (p % 8)
	}
	le.PutUint32(out[cqSelList:], uint32(lists))
	for i, p := range pcrs {
		list := cqSelList + 4 + (i/cqDigests)*cqDigestList
		le.PutUint32(out[list:], uint32(min(cqDigests, len(pcrs)-(i/cqDigests)*cqDigests)))
		d := list + 4 + (i%cqDigests)*cqDigestSize
		le.PutUint16(out[d:], uint16(len(values[p])))
		copy(out[d+2:], values[p])
	}
	return out, nil
}

// ParseCheckquotePCRs reads a serialized PCR file (the tpm2_quote -o
// layout) holding a single SHA-256 bank.
func ParseCheckquotePCRs(b []byte) ([]int, map[int][]byte, error) {
	bad := func(s string) error { return fmt.Errorf("tpm: checkquote pcrs: %s", s) }
	if len(b) < cqSelList+4 {
		return nil, nil, bad("short file")
	}
	le := binary.LittleEndian
	if le.Uint32(b) != 1 {
		return nil, nil, bad("want exactly one PCR bank")
	}
	if le.Uint16(b[4:]) != sha256Alg {
		return nil, nil, bad("bank is not sha256")
	}
	size := int(b[6])
	if size > cqSelectMax {
		return nil, nil, bad("sizeofSelect too large")
	}
	var pcrs []int
	for i := range size {
		for bit := range 8 {
			if b[7+i]&(1<<bit) != 0 {
				pcrs = append(pcrs, i*8+bit)
			}
		}
	}
	if len(pcrs) == 0 || pcrs[len(pcrs)-1] > maxPCR {
		return nil, nil, bad("bad selection")
	}
	lists := int(le.Uint32(b[cqSelList:]))
	if lists != (len(pcrs)+cqDigests-1)/cqDigests || len(b) != cqSelList+4+lists*cqDigestList {
		return nil, nil, bad("digest lists do not match the selection")
	}
	values := make(map[int][]byte, len(pcrs))
	for i, p := range pcrs {
		list := cqSelList + 4 + (i/cqDigests)*cqDigestList
		if int(le.Uint32(b[list:])) != min(cqDigests, len(pcrs)-(i/cqDigests)*cqDigests) {
			return nil, nil, bad("digest count")
		}
		d := list + 4 + (i%cqDigests)*cqDigestSize
		if le.Uint16(b[d:]) != 32 {
			return nil, nil, bad("digest size")
		}
		values[p] = slices.Clone(b[d+2 : d+2+32])
	}
	return pcrs, values, nil
}
