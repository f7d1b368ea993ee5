package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// MaxPCR is the highest PCR index accepted (PC Client TPMs have 24 PCRs).
const MaxPCR = 23

// checkSelection requires a sorted, duplicate-free list of PCR indexes.
func checkSelection(pcrs []int) error {
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
	if err := checkSelection(pcrs); err != nil {
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
	if err := checkSelection(out); err != nil {
		return nil, err
	}
	return out, nil
}

// PCRDigest is SHA-256 over the PCR values concatenated in selection order,
// the pcrDigest of a quote and the value hashed into a PolicyPCR.
func PCRDigest(pcrs []int, values map[int][]byte) ([]byte, error) {
	if err := checkSelection(pcrs); err != nil {
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

// MarshalPCRsFile writes the "serialized" PCR file that tpm2_quote -o
// writes and tpm2_checkquote -f reads: TPML_PCR_SELECTION, a UINT32 count,
// then count TPML_DIGESTs of at most 8 digests each, in selection order.
func MarshalPCRsFile(pcrs []int, values map[int][]byte) ([]byte, error) {
	if _, err := PCRDigest(pcrs, values); err != nil {
		return nil, err
	}
	var lists []tpm2.TPMLDigest
	for chunk := range slices.Chunk(pcrs, 8) {
		var l tpm2.TPMLDigest
		for _, p := range chunk {
			l.Digests = append(l.Digests, tpm2.TPM2BDigest{Buffer: values[p]})
		}
		lists = append(lists, l)
	}
	out := tpm2.Marshal(selection(pcrs))
	out = binary.BigEndian.AppendUint32(out, uint32(len(lists)))
	for _, l := range lists {
		out = append(out, tpm2.Marshal(l)...)
	}
	return out, nil
}

// ParsePCRsFile reads a file written by MarshalPCRsFile (or tpm2_quote)
// strictly: one SHA-256 bank, exactly one 32-byte value per selected PCR,
// nothing after the last list.
func ParsePCRsFile(b []byte) (pcrs []int, values map[int][]byte, err error) {
	const s = "pcrs file"
	if len(b) > MaxStructSize {
		return nil, nil, formatErr(s, "%d bytes exceeds %d", len(b), MaxStructSize)
	}
	defer func() {
		if r := recover(); r != nil {
			pcrs, values, err = nil, nil, formatErr(s, "decoder panic: %v", r)
		}
	}()
	sel, rest, err := readStruct[tpm2.TPMLPCRSelection](b)
	if err != nil {
		return nil, nil, &FormatError{Struct: s, Err: err}
	}
	if pcrs, err = selectionPCRs(*sel); err != nil {
		return nil, nil, &FormatError{Struct: s, Err: err}
	}
	if len(rest) < 4 {
		return nil, nil, formatErr(s, "no digest list count")
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if want := (len(pcrs) + 7) / 8; int(n) != want {
		return nil, nil, formatErr(s, "%d digest lists, want %d", n, want)
	}
	values = make(map[int][]byte, len(pcrs))
	next := 0
	for range n {
		var l *tpm2.TPMLDigest
		l, rest, err = readStruct[tpm2.TPMLDigest](rest)
		if err != nil {
			return nil, nil, &FormatError{Struct: s, Err: err}
		}
		for _, d := range l.Digests {
			if next >= len(pcrs) {
				return nil, nil, formatErr(s, "more digests than selected pcrs")
			}
			if len(d.Buffer) != sha256.Size {
				return nil, nil, formatErr(s, "pcr %d value is %d bytes", pcrs[next], len(d.Buffer))
			}
			values[pcrs[next]] = bytes.Clone(d.Buffer)
			next++
		}
	}
	if next != len(pcrs) {
		return nil, nil, formatErr(s, "%d digests for %d pcrs", next, len(pcrs))
	}
	if len(rest) != 0 {
		return nil, nil, formatErr(s, "%d trailing bytes", len(rest))
	}
	canon, err := MarshalPCRsFile(pcrs, values)
	if err != nil || !bytes.Equal(canon, b) {
		return nil, nil, formatErr(s, "non-canonical encoding")
	}
	return pcrs, values, nil
}

// readStruct decodes one T from the front of b and returns the rest.
func readStruct[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte) (*T, []byte, error) {
	t, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, nil, err
	}
	used := len(tpm2.Marshal(*t))
	if used > len(b) {
		return nil, nil, fmt.Errorf("re-encoding longer than input")
	}
	return t, b[used:], nil
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
