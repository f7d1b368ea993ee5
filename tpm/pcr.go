package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
)

// pcrSelection is the SHA-256 bank selection of pcrs (sorted, 0..23).
func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	sel := make([]byte, 3)
	for _, p := range pcrs {
		sel[p/8] |= 1 << (p % 8)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel}}}
}

// pcrDigest is SHA-256 over the values of pcrs in ascending order, the
// digest PolicyPCR and a quote compare.
func pcrDigest(pcrs []int, values map[int][]byte) []byte {
	h := sha256.New()
	for _, p := range pcrs {
		h.Write(values[p])
	}
	return h.Sum(nil)
}

// policyPCRDigest is the policy digest of a single TPM2_PolicyPCR over pcrs
// at values, starting from the empty policy: the authPolicy of the signing
// key and the data key.
func policyPCRDigest(pcrs []int, values map[int][]byte) ([]byte, error) {
	if err := checkPCRValues(pcrs, values); err != nil {
		return nil, err
	}
	sel := pcrSelection(pcrs)
	h := sha256.New()
	h.Write(make([]byte, sha256.Size))
	_ = binary.Write(h, binary.BigEndian, uint32(tpm2.TPMCCPolicyPCR))
	h.Write(tpm2.Marshal(&sel))
	h.Write(pcrDigest(pcrs, values))
	return h.Sum(nil), nil
}

// readPCRs reads the SHA-256 values of pcrs; the caller holds the lock.
func (t *TPM) readPCRs(pcrs []int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(pcrs))
	want := map[int]bool{}
	for _, p := range pcrs {
		want[p] = true
	}
	for range 8 { // a TPM returns at most 8 digests per call
		var rest []int
		for _, p := range pcrs {
			if want[p] {
				rest = append(rest, p)
			}
		}
		if len(rest) == 0 {
			return out, nil
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection(rest)}.Execute(t.tr)
		if err != nil {
			return nil, fmt.Errorf("tpm: pcr read: %w", err)
		}
		got := selected(rsp.PCRSelectionOut)
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("tpm: pcr read: sha256 bank has none of pcrs %v", rest)
		}
		for i, p := range got {
			if !want[p] {
				return nil, fmt.Errorf("tpm: pcr read: unrequested pcr %d", p)
			}
			out[p] = bytes.Clone(rsp.PCRValues.Digests[i].Buffer)
			delete(want, p)
		}
	}
	return nil, fmt.Errorf("tpm: pcr read: no progress")
}

// selected lists the SHA-256 PCRs a selection names, ascending.
func selected(s tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, ps := range s.PCRSelections {
		if ps.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for i, b := range ps.PCRSelect {
			for bit := range 8 {
				if b&(1<<bit) != 0 {
					out = append(out, i*8+bit)
				}
			}
		}
	}
	return out
}

// ReadPCRs reads the SHA-256 values of the configured PCRs.
func (t *TPM) ReadPCRs(ctx context.Context) (map[int][]byte, error) {
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	return t.readPCRs(t.pcrs)
}

// ExtendPCR extends SHA-256(data) into the SHA-256 bank of pcr. It exists
// for tests and for measuring the agent's own configuration; extending a
// bound PCR stops the signing key until an operator re-binds.
func (t *TPM) ExtendPCR(ctx context.Context, pcr int, data []byte) error {
	if pcr < 0 || pcr > attest.MaxPCR {
		return fmt.Errorf("tpm: extend: pcr %d out of range", pcr)
	}
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	d := sha256.Sum256(data)
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: extend pcr %d: %w", pcr, err)
	}
	return nil
}

func cloneValues(m map[int][]byte) map[int][]byte {
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = bytes.Clone(v)
	}
	return out
}
