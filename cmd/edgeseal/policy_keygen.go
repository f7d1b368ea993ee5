package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdPolicyKeygen makes a policy-admin key and adds its public half to an
// admin set file.
func cmdPolicyKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy keygen", flag.ContinueOnError)
	out := fs.String("out", "", "the private key file to write (required; mode 0600, never overwritten)")
	name := fs.String("name", "", "the admin's name, as principals are named (required)")
	useECDSA := fs.Bool("ecdsa", false, "make an ECDSA P-256 key (default Ed25519)")
	admins := fs.String("admins", "", "add the key to this admin set file (created when absent)")
	threshold := fs.Int("threshold", 0, "with --admins: set the admin set's threshold m (default: keep, 1 for a new set)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("policy keygen: unexpected argument %q", pos[0])
	}
	if *out == "" || *name == "" {
		return usageErr("policy keygen: --out FILE and --name NAME are required")
	}
	ad, err := signed.WriteKey(*out, *name, *useECDSA)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (admin %s, key %s)\n", *out, *name, signed.KeyID(ad.PublicKey))
	if *admins == "" {
		b, _ := json.Marshal(ad)
		fmt.Fprintf(stdout, "admin entry: %s\n", b)
		return nil
	}
	set := &signed.Admins{Version: signed.AdminsVersion}
	if b, err := os.ReadFile(*admins); err == nil {
		if set, err = signed.ParseAdmins(b); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	set.Admins = append(set.Admins, ad)
	if *threshold > 0 {
		set.Threshold = *threshold
	}
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	if _, err := signed.ParseAdmins(b); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*admins, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s to %s (%d admins, threshold %d)\n", *name, *admins, len(set.Admins), max(set.Threshold, 1))
	return nil
}
