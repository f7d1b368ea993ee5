package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// maxKeyFile bounds a PEM key file.
const maxKeyFile = 16 << 10

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
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	for _, p := range []string{*out, *out + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("tpm pcr-key new: %s exists; not overwriting a key", p)
		}
	}
	if err := fsutil.WriteFileAtomic(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return err
	}
	kid, _ := trustfile.PCRPolicyKeyID(&k.PublicKey)
	fmt.Fprintf(stdout, "wrote %s (private, keep it offline) and %s.pub; key %s\n", *out, *out, kid)
	return nil
}

// readPEM reads one PEM block of the given type from a bounded file.
func readPEM(path, typ string) ([]byte, error) {
	data, _, err := fsutil.ReadConfig(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	blk, rest := pem.Decode(data)
	if blk == nil || blk.Type != typ || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: want one PEM %s block", path, typ)
	}
	return blk.Bytes, nil
}

// readPCRPolicyPublic reads a FILE.pub that `tpm pcr-key new` wrote.
func readPCRPolicyPublic(path string) (*ecdsa.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 public key", path)
	}
	return ek, nil
}

// readPCRPolicyPrivate reads the private key `tpm pcr-key new` wrote.
func readPCRPolicyPrivate(path string) (*ecdsa.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 private key", path)
	}
	return ek, nil
}

// parsePCRList reads "0=HEX,2=HEX,...".
func parsePCRList(s string) ([]int, map[int][]byte, error) {
	values := map[int][]byte{}
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		p, err := strconv.Atoi(k)
		if !ok || err != nil || p < 0 || p > attest.MaxPCR {
			return nil, nil, fmt.Errorf("pcr item %.80q: want N=HEX with N in 0..%d", item, attest.MaxPCR)
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 32 {
			return nil, nil, fmt.Errorf("pcr %d: want 64 hex digits (a SHA-256 value)", p)
		}
		if _, dup := values[p]; dup {
			return nil, nil, fmt.Errorf("pcr %d given twice", p)
		}
		values[p] = b
	}
	pcrs := make([]int, 0, len(values))
	for p := range values {
		pcrs = append(pcrs, p)
	}
	sort.Ints(pcrs)
	return pcrs, values, nil
}

// formatPCRList writes values as parsePCRList reads them.
func formatPCRList(pcrs []int, values map[int][]byte) string {
	parts := make([]string, len(pcrs))
	for i, p := range pcrs {
		parts[i] = fmt.Sprintf("%d=%x", p, values[p])
	}
	return strings.Join(parts, ",")
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
	key, err := readPCRPolicyPrivate(*keyPath)
	if err != nil {
		return err
	}
	var pcrs []int
	var values map[int][]byte
	if *list != "" {
		pcrs, values, err = parsePCRList(*list)
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
	fmt.Fprintf(stdout, "wrote %s: device %s, pcrs %s, approvedPolicy %s, key %s\n", *out, a.Device, formatPCRList(pcrs, values), a.ApprovedPolicy, a.PolicyKeyID)
	return nil
}

// cmdAgentAuthorizePCRs runs `agent authorize-pcrs --config FILE STATEMENT`:
// checks the statement against the device's PCR-policy key (from the key
// file in the TPM state directory; the TPM itself is not opened, so the
// agent may be running) and stores it there. The running agent applies
// it at its next seal attempt, once the TPM shows the authorized values.
func cmdAgentAuthorizePCRs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("agent authorize-pcrs", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *cfgPath == "" || len(pos) != 1 {
		return usageErr("agent authorize-pcrs: want --config FILE and one statement file")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	raw, _, err := fsutil.ReadConfig(pos[0], trustfile.MaxPCRAuthSize)
	if err != nil {
		return err
	}
	a, err := agent.StorePCRAuthorization(cfg.TPMStateDir, cfg.DeviceID(), raw)
	if err != nil {
		return fmt.Errorf("agent authorize-pcrs: %w", err)
	}
	pcrs, values := a.PCRs()
	fmt.Fprintf(stdout, "stored in %s: pcrs %s signed %s by %s; the running agent applies it at its next seal attempt (or at its next start)\n",
		cfg.TPMStateDir, formatPCRList(pcrs, values), a.Time, a.PolicyKeyID)
	return nil
}

// loadPCRAuthorization installs the stored authorization when the agent
// or a command on its stopped journal (bundles export, import-receipts,
// agent rotate-key, tpm recover, tpm rewrap) opens the TPM, before the data key is unsealed; a
// refused one is logged and left for the seal loop to report.
func loadPCRAuthorization(ctx context.Context, cfg *config.Config, t agent.PCRAuthorizer, log *slog.Logger) {
	a, err := agent.LoadPCRAuthorization(ctx, cfg.TPMStateDir, cfg.DeviceID(), t)
	var pe *agent.PCRAuthError
	switch {
	case errors.As(err, &pe):
		log.Error("PCR AUTHORIZATION NOT APPLIED", "err", err)
	case err != nil:
		log.Error("pcr authorization: cannot install", "err", err)
	}
	if a != nil {
		log.Info("pcr authorization installed", "pcrs", a.PCRSelection.PCRs, "signed", a.Time, "policy_key", a.PolicyKeyID)
	}
}
