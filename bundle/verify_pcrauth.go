package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// PCRState is the golden PCR values in force after a bundle of a device
// whose keys are bound to a PCR-policy key (a version 2 trust): the
// trust's values at enrollment, or those of the last valid PCR
// authorization record in the chain.
type PCRState struct {
	Selection PCRSelection      `json:"selection"`
	Values    map[string]string `json:"values"`
	// Record is the leaf hash of the authorization record that set them;
	// empty while the trust's values are in force.
	Record string `json:"record,omitempty"`
}

// pcrGolden is what the pcrs.authorization check leaves for the checks
// after it: the golden values the quote must show.
type pcrGolden struct {
	done   bool
	pcrs   []int
	values map[int][]byte
	record string
}

// values parses the state's selection and values.
func (p *PCRState) values() ([]int, map[int][]byte, error) {
	q := SealQuote{PCRSelection: p.Selection, PCRValues: p.Values}
	pcrs, values, err := q.Values()
	if err != nil {
		return nil, nil, err
	}
	if p.Record != "" {
		if _, err := ParseHash(p.Record); err != nil {
			return nil, nil, err
		}
	}
	return pcrs, values, nil
}

func newPCRState(pcrs []int, values map[int][]byte, record string) *PCRState {
	q := NewSealQuote(nil, nil, pcrs, values)
	return &PCRState{Selection: q.PCRSelection, Values: q.PCRValues, Record: record}
}

// pcrsAuthorization is the pcrs.authorization check. For a trust with a
// PCR-policy key, the golden values start at the previous state's (else
// the trust's) and each tpm.pcrs.authorized record of the bundle, in
// order, must be a statement for this device and its selection signed by
// the trust's policy key; its values are golden from it on. For a trust
// without one, such a record cannot be checked and fails.
func (v *verifier) pcrsAuthorization() error {
	if err := v.needTrust(); err != nil {
		return err
	}
	key := v.t.PCRPolicy()
	g := &v.pcr
	g.pcrs, g.values = v.t.pcrs, v.t.golden
	if key != nil && v.prev != nil && v.prev.PCRs != nil {
		pcrs, values, err := v.prev.PCRs.values()
		if err != nil {
			return fmt.Errorf("previous state pcrs: %w", err)
		}
		if !slices.Equal(pcrs, v.t.pcrs) {
			return fmt.Errorf("previous state pcrs %v, trust selects %v", pcrs, v.t.pcrs)
		}
		g.pcrs, g.values, g.record = pcrs, values, v.prev.PCRs.Record
	}
	if err := v.needRecords(); err != nil {
		return err
	}
	var errs []string
	n := 0
	for i, r := range v.recs {
		if r.Type != TypePCRsAuthorized {
			continue
		}
		seq := r.Seq
		if key == nil {
			errs = append(errs, fmt.Sprintf("record %d: pcr authorization, but the trust has no pcr policy key", seq))
			continue
		}
		a, err := ParsePCRAuthorization(r.Body)
		if err == nil {
			err = a.Verify(key, v.t.DeviceName())
		}
		if err == nil && !slices.Equal(a.pcrs, v.t.pcrs) {
			err = fmt.Errorf("authorizes pcrs %v, the trust selects %v", a.pcrs, v.t.pcrs)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("record %d: %v", seq, err))
			continue
		}
		g.values, g.record = a.values, FormatHash(v.leaves[i])
		n++
	}
	if len(errs) > 0 {
		return joinErrs(errs)
	}
	g.done = true
	if n > 0 {
		v.note = fmt.Sprintf("%d authorization(s); golden now %s", n, formatGolden(g.pcrs, g.values))
	}
	return nil
}

func formatGolden(pcrs []int, values map[int][]byte) string {
	var b bytes.Buffer
	for i, p := range pcrs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d=%x", p, values[p][:4])
	}
	return b.String()
}

// goldenPCRs is the selection and values a quote must show: those the
// pcrs.authorization check left, else an error naming it.
func (v *verifier) goldenPCRs() ([]int, map[int][]byte, error) {
	if !v.pcr.done {
		return nil, nil, errors.New("golden pcrs unknown: " + CheckPCRsAuthorization + " failed")
	}
	return v.pcr.pcrs, v.pcr.values, nil
}

// pcrState is the PCRs part of the state after the bundle, nil for a
// trust without a PCR-policy key.
func (v *verifier) pcrState() *PCRState {
	if v.t.PCRPolicy() == nil || !v.pcr.done {
		return nil
	}
	return newPCRState(v.pcr.pcrs, v.pcr.values, v.pcr.record)
}
