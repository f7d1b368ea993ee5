package main

import (
	"flag"
	"io"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdPolicyDiff lists the workflows and schemas added, removed and
// changed between two policies (signed or bare files).
func cmdPolicyDiff(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy diff", flag.ContinueOnError)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("policy diff: want OLD NEW")
	}
	var docs [2]*signed.Document
	for i, p := range pos {
		b, err := fsutil.ReadLimited(p, dsse.MaxEnvelopeSize)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if docs[i], err = signed.ReadDocument(p, b); err != nil {
			return err
		}
	}
	ch, err := signed.Diff(docs[0], docs[1])
	if err != nil {
		return err
	}
	return signed.WriteDiff(stdout, ch)
}
