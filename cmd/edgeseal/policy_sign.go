package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdPolicySign adds an admin's signature to a policy: a new signed
// policy from POLICY.yaml, or one more signature on --in SIGNED (which
// must carry the same policy).
func cmdPolicySign(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy sign", flag.ContinueOnError)
	key := fs.String("key", "", "the admin's private key (required)")
	in := fs.String("in", "", "a signed policy to add the signature to (its policy must be POLICY.yaml's)")
	out := fs.String("out", "", "the signed policy to write (required; may be --in)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *key == "" || *out == "" {
		return usageErr("policy sign: want --key FILE [--in SIGNED] POLICY.yaml --out SIGNED")
	}
	k, err := signed.ReadKey(*key)
	if err != nil {
		return err
	}
	payload, err := signed.Pack(pos[0])
	if err != nil {
		return fmt.Errorf("policy sign: %w", err) // Pack names the file
	}
	var env *dsse.Envelope
	if *in != "" {
		b, err := fsutil.ReadLimited(*in, dsse.MaxEnvelopeSize)
		if err != nil {
			return err
		}
		if env, _, _, err = signed.ParseEnvelope(b); err != nil {
			return err
		}
	}
	b, err := signed.Sign(ctx, env, payload, k)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s with key %s: %s\n", pos[0], k.KeyID(), *out)
	return nil
}
