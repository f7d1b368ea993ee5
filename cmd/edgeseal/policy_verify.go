package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdPolicyVerify checks a signed policy against an admin set, as the
// agent does before it puts one in force. Exit 1 when it would refuse it.
func cmdPolicyVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy verify", flag.ContinueOnError)
	adminsPath := fs.String("admins", "", "the admin set file (required)")
	threshold := fs.Int("threshold", 0, "signatures required (default: the admin set's threshold)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *adminsPath == "" {
		return usageErr("policy verify: want --admins FILE [--threshold M] SIGNED")
	}
	if *threshold < 0 {
		return usageErr("policy verify: --threshold %d: want 1 or more", *threshold)
	}
	admins, err := signed.ReadAdmins(*adminsPath)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("policy verify: admin set %s: %w", *adminsPath, err)}
	}
	if *threshold > 0 {
		if *threshold > len(admins.Admins) || *threshold > dsse.MaxSignatures {
			return usageErr("policy verify: --threshold %d: the set has %d admins, an envelope at most %d signatures", *threshold, len(admins.Admins), dsse.MaxSignatures)
		}
		admins.Threshold = *threshold
	}
	b, err := fsutil.ReadRegular(pos[0], dsse.MaxEnvelopeSize)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("policy verify: %w", err)}
	}
	s, err := signed.Verify(b, admins)
	if err != nil {
		return fmt.Errorf("policy verify: %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "ok: policy %s signed by %s (%d of %d required)\n", s.Policy.Digest(), strings.Join(s.Signers, ", "), len(s.Signers), admins.Threshold)
	return nil
}
