package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// cmdPCRKey runs `tpm pcr-key new --out FILE`: an ECDSA P-256 PCR-policy
// key for the operator to keep offline (FILE, 0600) and its public half
// (FILE.pub) for `tpm enroll --pcr-policy-key`.
func cmdPCRKey(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usageErr("tpm pcr-key: want 'tpm pcr-key new --out FILE'")
	}
	fs := flag.NewFlagSet("tpm pcr-key new", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the private key (its public key goes to FILE.pub)")
	if pos, err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("tpm pcr-key new: unexpected argument %q", pos[0])
	}
	if *out == "" {
		return usageErr("tpm pcr-key new: --out is required")
	}
	kid, err := agent.WritePCRPolicyKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (private, keep it offline) and %s.pub; key %s\n", *out, *out, kid)
	return nil
}

// cmdAuthorizePCRs runs `tpm authorize-pcrs`: the operator signs PCR
// values for one device with the offline PCR-policy key.
func cmdAuthorizePCRs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tpm authorize-pcrs", flag.ContinueOnError)
	keyPath := fs.String("key", "", "the PCR-policy private key (from 'tpm pcr-key new')")
	device := fs.String("device", "", "SITE/DEVICE the authorization is for")
	list := fs.String("pcrs", "", "the values to authorize: 0=HEX,2=HEX,4=HEX,7=HEX")
	fromQuote := fs.String("from-quote", "", "take the values from a tpm2-tools PCR file (quote.pcrs in a bundle, tpm2_quote -o)")
	out := fs.String("out", "pcr-authorization.json", "where to write the statement")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("tpm authorize-pcrs: unexpected argument %q", pos[0])
	}
	if *keyPath == "" || *device == "" || (*list == "") == (*fromQuote == "") {
		return usageErr("tpm authorize-pcrs: --key, --device and one of --pcrs or --from-quote are required")
	}
	if err := wire.CheckDevice(*device); err != nil {
		return usageErr("tpm authorize-pcrs: %v", err)
	}
	key, err := agent.ReadPCRPolicyPrivate(*keyPath)
	if err != nil {
		return err
	}
	var pcrs []int
	var values map[int][]byte
	if *list != "" {
		pcrs, values, err = agent.ParsePCRs(*list)
	} else {
		var data []byte
		if data, _, err = fsutil.ReadConfig(*fromQuote, 64<<10); err == nil {
			pcrs, values, err = attest.ParsePCRsFile(data)
		}
	}
	if err != nil {
		return usageErr("tpm authorize-pcrs: %v", err)
	}
	a, err := trustfile.SignPCRAuthorization(key, *device, pcrs, values, time.Now())
	if err != nil {
		return err
	}
	raw, err := a.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, raw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: device %s, pcrs %s, approvedPolicy %s, key %s\n", *out, a.Device, agent.FormatPCRs(pcrs, values), a.ApprovedPolicy, a.PolicyKeyID)
	return nil
}
