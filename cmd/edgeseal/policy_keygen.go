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

// maxAdminsSize bounds the admin set file, as signed.ReadAdmins does.
const maxAdminsSize = 1 << 20

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
	if *threshold < 0 {
		return usageErr("policy keygen: --threshold %d: want 1 or more", *threshold)
	}
	// The admin set is read before the key is made: a set that cannot take
	// the key leaves no key file behind.
	set := &signed.Admins{Version: signed.AdminsVersion}
	if *admins != "" {
		// The set is rewritten by rename: a link there would be replaced,
		// not followed, so it is refused.
		if fi, err := os.Lstat(*admins); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return &exitError{code: 2, err: fmt.Errorf("policy keygen: admin set %s: a symbolic link is refused (the set is rewritten in its place)", *admins)}
		}
		if b, err := fsutil.ReadRegular(*admins, maxAdminsSize); err == nil {
			if set, err = signed.ParseAdmins(b); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("policy keygen: admin set %s: %w", *admins, err)}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return &exitError{code: 2, err: fmt.Errorf("policy keygen: admin set: %w", err)}
		}
	}
	ad, err := signed.WriteKey(*out, *name, *useECDSA)
	if err != nil {
		return err
	}
	if *admins == "" {
		fmt.Fprintf(stdout, "wrote %s (admin %s, key %s)\n", *out, *name, signed.KeyID(ad.PublicKey))
		b, _ := json.Marshal(ad)
		fmt.Fprintf(stdout, "admin entry: %s\n", b)
		return nil
	}
	set.Admins = append(set.Admins, ad)
	if *threshold > 0 {
		set.Threshold = *threshold
	}
	b, err := json.MarshalIndent(set, "", "  ")
	if err == nil {
		_, err = signed.ParseAdmins(b)
	}
	if err == nil {
		err = fsutil.WriteFileAtomic(*admins, append(b, '\n'), 0o644)
	}
	if err != nil {
		// The key is in no set: remove it (this command created it).
		_ = os.Remove(*out)
		return fmt.Errorf("policy keygen: %s not added to %s, %s not kept: %w", *name, *admins, *out, err)
	}
	fmt.Fprintf(stdout, "wrote %s (admin %s, key %s)\n", *out, *name, signed.KeyID(ad.PublicKey))
	fmt.Fprintf(stdout, "added %s to %s (%d admins, threshold %d)\n", *name, *admins, len(set.Admins), max(set.Threshold, 1))
	return nil
}
