package verify

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// PCRState is the golden PCR values in force after a bundle of a device
// whose keys are bound to a PCR-policy key (a version 2 trust): the
// trust's values at enrollment, or those of the last valid PCR
// authorization record in the chain.
type PCRState struct {
	Selection bundle.PCRSelection `json:"selection"`
	Values    map[string]string   `json:"values"`
	// Record is the leaf hash of the authorization record that set them
	// and Time its signed time; both empty while the trust's values are
	// in force.
	Record string `json:"record,omitempty"`
	Time   string `json:"time,omitempty"`
}

// pcrGolden is what the pcrs.authorization check leaves for the checks
// after it: the golden values the quote must show.
type pcrGolden struct {
	done     bool
	pcrs     []int
	values   map[int][]byte
	record   string
	at       string // signed time of the authorization in force
	approved []byte // its approvedPolicy
}

// values parses the state's selection and values.
func (p *PCRState) values() ([]int, map[int][]byte, error) {
	q := bundle.SealQuote{PCRSelection: p.Selection, PCRValues: p.Values}
	pcrs, values, err := q.Values()
	if err != nil {
		return nil, nil, err
	}
	if (p.Record == "") != (p.Time == "") {
		return nil, nil, wire.FormatErr("state", "pcrs record and time go together")
	}
	if p.Record != "" {
		if _, err := wire.ParseHash(p.Record); err != nil {
			return nil, nil, err
		}
		if _, err := wire.ParseTime(p.Time); err != nil {
			return nil, nil, err
		}
	}
	return pcrs, values, nil
}

func newPCRState(g *pcrGolden) *PCRState {
	q := bundle.NewSealQuote(nil, nil, g.pcrs, g.values)
	return &PCRState{Selection: q.PCRSelection, Values: q.PCRValues, Record: g.record, Time: g.at}
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
	g.pcrs, g.values = v.t.PCRs()
	if key != nil && v.prev != nil && v.prev.PCRs != nil {
		pcrs, values, err := v.prev.PCRs.values()
		if err != nil {
			return fmt.Errorf("previous state pcrs: %w", err)
		}
		if tp := trustPCRs(v.t); !slices.Equal(pcrs, tp) {
			return fmt.Errorf("previous state pcrs %v, trust selects %v", pcrs, tp)
		}
		g.pcrs, g.values, g.record, g.at = pcrs, values, v.prev.PCRs.Record, v.prev.PCRs.Time
		if g.record != "" {
			if g.approved, err = attest.PolicyPCRDigest(pcrs, values); err != nil {
				return err
			}
		}
	}
	if err := v.needRecords(); err != nil {
		return err
	}
	var errs []string
	n := 0
	for i, r := range v.recs {
		if r.Type != custody.TypePCRsAuthorized {
			continue
		}
		seq := r.Seq
		if key == nil {
			errs = append(errs, fmt.Sprintf("record %d: pcr authorization, but the trust has no pcr policy key", seq))
			continue
		}
		a, err := trustfile.ParsePCRAuthorization(r.Body)
		if err == nil {
			err = a.Verify(key, v.t.DeviceName())
		}
		apcrs, avalues := a.PCRs()
		if tp := trustPCRs(v.t); err == nil && !slices.Equal(apcrs, tp) {
			err = fmt.Errorf("authorizes pcrs %v, the trust selects %v", apcrs, tp)
		}
		if err == nil {
			err = g.notOlder(a)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("record %d: %v", seq, err))
			continue
		}
		g.values, g.record, g.at, g.approved = avalues, wire.FormatHash(v.leaves[i]), a.Time, a.ApprovedPolicyDigest()
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

// notOlder refuses an authorization signed before the one in force (an
// old one replayed, e.g. to go back to a firmware with a known flaw), and
// one signed at the same time for other values. The same statement again
// (journaled twice across a crash) changes nothing and passes.
func (g *pcrGolden) notOlder(a *trustfile.PCRAuthorization) error {
	if g.at == "" {
		return nil
	}
	switch {
	case a.Time < g.at:
		return fmt.Errorf("signed at %s, before the authorization in force (%s): an older authorization replayed", a.Time, g.at)
	case a.Time == g.at && !bytes.Equal(a.ApprovedPolicyDigest(), g.approved):
		return fmt.Errorf("signed at %s like the authorization in force, for other values", a.Time)
	}
	return nil
}

// pcrState is the PCRs part of the state after the bundle, nil for a
// trust without a PCR-policy key.
func (v *verifier) pcrState() *PCRState {
	if v.t.PCRPolicy() == nil || !v.pcr.done {
		return nil
	}
	return newPCRState(&v.pcr)
}

// trustPCRs is the PCR selection of the trust.
func trustPCRs(t *trustfile.Trust) []int {
	pcrs, _ := t.PCRs()
	return pcrs
}
