package main

import (
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// check judges every case with this repository's reader and verifier and
// returns the cases judged otherwise than verdicts.json says.
func (c *corpus) check() []string {
	var bad []string
	for _, cs := range c.doc.Cases {
		if msg := c.judge(cs); msg != "" {
			bad = append(bad, cs.Name+": "+msg)
		}
	}
	return bad
}

func (c *corpus) judge(cs Case) string {
	trust, err := trustfile.ParseTrust(c.files[cs.Trust])
	if err != nil {
		return "trust: " + err.Error()
	}
	var prev *verify.State
	for _, p := range cs.Previous {
		b, err := bundle.ReadBytes(c.files[p], bundle.DefaultLimits)
		if err != nil {
			return "previous " + p + ": " + err.Error()
		}
		r := verify.Verify(b, trust, prev)
		if !r.OK() {
			return "previous " + p + " does not verify: " + fmt.Sprint(r.Failed())
		}
		prev = r.State
	}
	b, err := bundle.ReadBytes(c.files[cs.Bundle], bundle.DefaultLimits)
	if err != nil {
		if cs.Check != CheckRead || Refusal(err) != cs.Refusal {
			return fmt.Sprintf("want %s %s, the reader refused: %v (%s)", cs.Verdict, cs.Check, err, Refusal(err))
		}
		return ""
	}
	r := verify.Verify(b, trust, prev)
	switch {
	case cs.Verdict == Verified && !r.OK():
		return fmt.Sprintf("want verified, failed %v", r.Failed())
	case cs.Verdict == NotVerified && r.OK():
		return fmt.Sprintf("want %s to fail, VERIFIED", cs.Check)
	case cs.Verdict == NotVerified && !slices.Contains(r.Failed(), cs.Check):
		return fmt.Sprintf("want %s to fail, failed %v", cs.Check, r.Failed())
	}
	return ""
}
