package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// MaxPCR is the highest PCR index accepted (PC Client TPMs have 24 PCRs).
const MaxPCR = 23

// CheckSelection requires a sorted, duplicate-free list of PCR indexes
// from 0 to MaxPCR.
func CheckSelection(pcrs []int) error {
	if len(pcrs) == 0 {
		return fmt.Errorf("attest: empty pcr selection")
	}
	for i, p := range pcrs {
		if p < 0 || p > MaxPCR {
			return fmt.Errorf("attest: pcr %d out of range", p)
		}
		if i > 0 && pcrs[i-1] >= p {
			return fmt.Errorf("attest: pcr selection %v not sorted and unique", pcrs)
		}
	}
	return nil
}

// selection builds the single-bank SHA-256 TPML_PCR_SELECTION for pcrs.
func selection(pcrs []int) tpm2.TPMLPCRSelection {
	bitmap := make([]byte, 3)
	for _, p := range pcrs {
		bitmap[p/8] |= 1 << (p % 8)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash: tpm2.TPMAlgSHA256, PCRSelect: bitmap,
	}}}
}

// MarshalPCRSelection returns the TPML_PCR_SELECTION bytes selecting pcrs
// in the SHA-256 bank.
func MarshalPCRSelection(pcrs []int) ([]byte, error) {
	if err := CheckSelection(pcrs); err != nil {
		return nil, err
	}
	return tpm2.Marshal(selection(pcrs)), nil
}

// selectionPCRs turns a decoded selection back into a sorted list. It
// accepts exactly one SHA-256 bank.
func selectionPCRs(sel tpm2.TPMLPCRSelection) ([]int, error) {
	if len(sel.PCRSelections) != 1 {
		return nil, fmt.Errorf("%w: %d pcr banks", ErrUnsupported, len(sel.PCRSelections))
	}
	s := sel.PCRSelections[0]
	if s.Hash != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("%w: pcr bank %#04x", ErrUnsupported, uint16(s.Hash))
	}
	var out []int
	for i, b := range s.PCRSelect {
		for bit := range 8 {
			if b&(1<<bit) != 0 {
				out = append(out, i*8+bit)
			}
		}
	}
	if err := CheckSelection(out); err != nil {
		return nil, err
	}
	return out, nil
}

// PCRDigest is SHA-256 over the PCR values concatenated in selection order,
// the pcrDigest of a quote and the value hashed into a PolicyPCR.
func PCRDigest(pcrs []int, values map[int][]byte) ([]byte, error) {
	if err := CheckSelection(pcrs); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, p := range pcrs {
		v, ok := values[p]
		if !ok {
			return nil, fmt.Errorf("attest: no value for pcr %d", p)
		}
		if len(v) != sha256.Size {
			return nil, fmt.Errorf("attest: pcr %d value is %d bytes, want 32", p, len(v))
		}
		h.Write(v)
	}
	return h.Sum(nil), nil
}

// PolicyPCRDigest computes the policy digest of a trial session that ran
// TPM2_PolicyPCR(pcrs, digest of values) from the all-zero SHA-256 start:
// H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values)).
func PolicyPCRDigest(pcrs []int, values map[int][]byte) ([]byte, error) {
	digest, err := PCRDigest(pcrs, values)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(make([]byte, sha256.Size))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMCCPolicyPCR)))
	h.Write(tpm2.Marshal(selection(pcrs)))
	h.Write(digest)
	return h.Sum(nil), nil
}

// Layout of the tpm2-tools "serialized" PCR file (tpm2_quote -o, read by
// tpm2_checkquote -f): the host C structs dumped little-endian, a
// TPML_PCR_SELECTION (16 bank slots), a UINT32 count, then count
// TPML_DIGESTs of up to 8 TPM2B_DIGESTs of sizeof(TPMU_HA) bytes each.
const (
	pfBanks      = 16 // TPM2_NUM_PCR_BANKS
	pfSelectMax  = 4  // TPM2_PCR_SELECT_MAX
	pfSelSize    = 8  // sizeof(TPMS_PCR_SELECTION): 2+1+4, padded to 8
	pfSelList    = 4 + pfBanks*pfSelSize
	pfDigests    = 8  // digests in a TPML_DIGEST
	pfHASize     = 64 // sizeof(TPMU_HA)
	pfDigestSize = 2 + pfHASize
	pfDigestList = 4 + pfDigests*pfDigestSize
)

// MarshalPCRsFile writes the PCR file tpm2_quote -o writes and
// tpm2_checkquote -f reads, for one SHA-256 bank (sizeofSelect 3). All
// padding and unused slots are zero, so the encoding is unique.
func MarshalPCRsFile(pcrs []int, values map[int][]byte) ([]byte, error) {
	if _, err := PCRDigest(pcrs, values); err != nil {
		return nil, err
	}
	lists := (len(pcrs) + pfDigests - 1) / pfDigests
	out := make([]byte, pfSelList+4+lists*pfDigestList)
	le := binary.LittleEndian
	le.PutUint32(out[0:], 1)
	le.PutUint16(out[4:], uint16(tpm2.TPMAlgSHA256))
	out[6] = 3
	for _, p := range pcrs {
		out[7+p/8] |= 1 << (p % 8)
	}
	le.PutUint32(out[pfSelList:], uint32(lists))
	for i, p := range pcrs {
		list := pfSelList + 4 + (i/pfDigests)*pfDigestList
		le.PutUint32(out[list:], uint32(min(pfDigests, len(pcrs)-(i/pfDigests)*pfDigests)))
		d := list + 4 + (i%pfDigests)*pfDigestSize
		le.PutUint16(out[d:], uint16(len(values[p])))
		copy(out[d+2:], values[p])
	}
	return out, nil
}

// ParsePCRsFile reads a PCR file in the tpm2_quote -o layout strictly:
// one SHA-256 bank, one 32-byte value per selected PCR, and exactly the
// bytes MarshalPCRsFile writes (zero padding, no trailing data).
func ParsePCRsFile(b []byte) (pcrs []int, values map[int][]byte, err error) {
	const s = "pcrs file"
	if len(b) < pfSelList+4 || len(b) > MaxStructSize {
		return nil, nil, formatErr(s, "%d bytes", len(b))
	}
	le := binary.LittleEndian
	if n := le.Uint32(b); n != 1 {
		return nil, nil, formatErr(s, "%d pcr banks, want 1", n)
	}
	if h := le.Uint16(b[4:]); h != uint16(tpm2.TPMAlgSHA256) {
		return nil, nil, fmt.Errorf("%w: pcr bank %#04x", ErrUnsupported, h)
	}
	size := int(b[6])
	if size > pfSelectMax {
		return nil, nil, formatErr(s, "sizeofSelect %d", size)
	}
	for i := range size {
		for bit := range 8 {
			if b[7+i]&(1<<bit) != 0 {
				pcrs = append(pcrs, i*8+bit)
			}
		}
	}
	if err := CheckSelection(pcrs); err != nil {
		return nil, nil, &FormatError{Struct: s, Err: err}
	}
	lists := int(le.Uint32(b[pfSelList:]))
	if lists != (len(pcrs)+pfDigests-1)/pfDigests || len(b) != pfSelList+4+lists*pfDigestList {
		return nil, nil, formatErr(s, "%d digest lists in %d bytes for %d pcrs", lists, len(b), len(pcrs))
	}
	values = make(map[int][]byte, len(pcrs))
	for i, p := range pcrs {
		d := pfSelList + 4 + (i/pfDigests)*pfDigestList + 4 + (i%pfDigests)*pfDigestSize
		if n := le.Uint16(b[d:]); n != sha256.Size {
			return nil, nil, formatErr(s, "pcr %d value of %d bytes", p, n)
		}
		values[p] = bytes.Clone(b[d+2 : d+2+sha256.Size])
	}
	canon, err := MarshalPCRsFile(pcrs, values)
	if err != nil || !bytes.Equal(canon, b) {
		return nil, nil, formatErr(s, "non-canonical encoding (padding, counts or sizeofSelect)")
	}
	return pcrs, values, nil
}

// FormatPCRs renders a PCR map for error messages and reports ("0:ab12..").
func FormatPCRs(pcrs []int, values map[int][]byte) string {
	var b strings.Builder
	for i, p := range pcrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(p))
		b.WriteByte(':')
		fmt.Fprintf(&b, "%x", values[p])
	}
	return b.String()
}
