package config

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Bounds checked by validation.
const (
	MinSealInterval  = 100 * time.Millisecond
	MinRotateEvery   = time.Hour
	MinSpoolPoll     = 10 * time.Millisecond
	MaxBodyLimit     = 4 * GiB
	MaxBatchLinesMax = 1_000_000
	MaxPCR           = attest.MaxPCR
)

// validate checks c after decoding and fills derived values (lowercase token
// hashes, sorted PCRs). It returns every problem found, in key order.
func (c *Config) validate() []*Error {
	var errs []*Error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Error{Key: key, Reason: fmt.Sprintf(format, a...)})
	}

	checkName := func(key, v string) {
		switch {
		case v == "":
			bad(key, "required")
		case strings.Contains(v, "/"):
			bad(key, "must not contain '/'")
		case wire.CheckDevice(v+"/x") != nil:
			bad(key, "want 1 to 64 of [A-Za-z0-9._-], not \".\" or \"..\"; got %.80q", v)
		}
	}
	checkName("site", c.Site)
	checkName("device", c.Device)

	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if err := checkTPM(c.TPM); err != "" {
		bad("tpm", "%s", err)
	} else if sp, _ := tpm.ParseSpec(c.TPM); sp.Kind == tpm.KindSimulator && !c.TPMInsecureSimulator {
		bad("tpm", "the in-process simulator keeps its secrets in plain files and proves nothing; for a test or demo set tpm_insecure_simulator: true, else use device:/dev/tpmrm0")
	}
	if c.TPMStateDir == "" {
		bad("tpm_state_dir", "required")
	}

	if len(c.PCRs) == 0 {
		bad("pcrs", "at least one PCR is required")
	}
	seen := map[int]bool{}
	for i, p := range c.PCRs {
		key := "pcrs[" + strconv.Itoa(i) + "]"
		switch {
		case p < 0 || p > MaxPCR:
			bad(key, "PCR %d out of range 0..%d", p, MaxPCR)
		case seen[p]:
			bad(key, "PCR %d listed twice", p)
		}
		seen[p] = true
	}
	slices.Sort(c.PCRs)

	if c.Seal.MaxBundle < 64*KiB {
		bad("seal.max_bundle", "must be at least 64 KiB, got %d bytes", int64(c.Seal.MaxBundle))
	}
	if c.Retention.LocalPayloads < 0 || (c.Retention.LocalPayloads > 0 && c.Retention.LocalPayloads < time.Second) {
		bad("retention.local_payloads", "must be 0 (keep) or at least 1s, got %s", c.Retention.LocalPayloads)
	}
	if c.Seal.RotateEvery != 0 && c.Seal.RotateEvery < MinRotateEvery {
		bad("seal.rotate_every", "must be 0 (off) or at least %s, got %s", MinRotateEvery, c.Seal.RotateEvery)
	}
	if c.Seal.Every < 1 {
		bad("seal.every", "must be at least 1, got %d", c.Seal.Every)
	}
	if c.Seal.Interval < MinSealInterval {
		bad("seal.interval", "must be at least %s, got %s", MinSealInterval, c.Seal.Interval)
	}

	c.validateAPI(bad)

	if c.Spool.Dir != "" && c.Spool.Poll < MinSpoolPoll {
		bad("spool.poll", "must be at least %s, got %s", MinSpoolPoll, c.Spool.Poll)
	}
	if c.Spool.Dir != "" {
		c.validateSpoolAccess(bad)
		if p := c.Principals.Find(c.Spool.Principal); p == nil {
			bad("spool.principal", "must name a principal of this config, got %.64q", c.Spool.Principal)
		} else if !p.Has(RoleExporter) {
			bad("spool.principal", "principal %.64q lacks the exporter role", c.Spool.Principal)
		}
	}
	c.validateSync(bad)
	if e := c.Encryption; e.ContentKey == "" && e.ArchiveKey != "" {
		bad("encryption.archive_key", "set without encryption.content_key")
	} else if e.ContentKey != "" && e.ArchiveKey == "" && c.Sync.ArchiveKey == "" {
		bad("encryption.archive_key", "required with encryption.content_key when sync.archive_key is not set: the content key announcement must verify against the archive's key")
	}
	if c.Policy == "" {
		bad("policy", "required: the path of the policy file")
	}
	c.validatePrincipals(bad)

	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "want text or json, got %.40q", c.Log.Format)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "want debug, info, warn or error, got %.40q", c.Log.Level)
	}
	if c.Metrics.Listen != "" {
		if err := checkLoopback(c.Metrics.Listen); err != "" {
			bad("metrics.listen", "%s", err)
		}
	}
	return errs
}

func (c *Config) validateAPI(bad func(key, format string, a ...any)) {
	a := &c.API
	if a.Socket == "" && a.TCP == "" {
		bad("api.socket", "no listener: set api.socket, api.tcp or both")
	}
	if a.SocketMode&0o002 != 0 {
		bad("api.socket_mode", "must not be world-writable, got %04o", uint32(a.SocketMode))
	}
	c.validateAPIAccess(bad)
	if a.TCP != "" {
		if err := checkLoopback(a.TCP); err != "" {
			bad("api.tcp", "%s", err)
		}
		if a.TLSCert == "" {
			bad("api.tls_cert", "required when api.tcp is set")
		}
		if a.TLSKey == "" {
			bad("api.tls_key", "required when api.tcp is set")
		}
	} else {
		if a.TLSCert != "" {
			bad("api.tls_cert", "only used with api.tcp, which is not set")
		}
		if a.TLSKey != "" {
			bad("api.tls_key", "only used with api.tcp, which is not set")
		}
	}
	if a.MaxBody < 1 || a.MaxBody > MaxBodyLimit {
		bad("api.max_body", "must be from 1 B to %s, got %d bytes", MaxBodyLimit, int64(a.MaxBody))
	}
	if a.MaxBatchLines < 1 || a.MaxBatchLines > MaxBatchLinesMax {
		bad("api.max_batch_lines", "must be from 1 to %d, got %d", MaxBatchLinesMax, a.MaxBatchLines)
	}
}

func (c *Config) validatePrincipals(bad func(key, format string, a ...any)) {
	names := map[string]bool{}
	tokens := map[string]bool{}
	for i := range c.Principals {
		p := &c.Principals[i]
		key := "principals[" + strconv.Itoa(i) + "]"
		switch {
		case p.Name == "":
			bad(key+".name", "required")
		case !validPrincipalName(p.Name):
			bad(key+".name", "want 1 to 64 of [A-Za-z0-9._@-], got %.80q", p.Name)
		case names[p.Name]:
			bad(key+".name", "principal %q listed twice", p.Name)
		}
		names[p.Name] = true

		p.TokenSHA256 = strings.ToLower(p.TokenSHA256)
		hexs, ok := strings.CutPrefix(p.TokenSHA256, "sha256:")
		if b, err := hex.DecodeString(hexs); !ok || err != nil || len(b) != 32 {
			bad(key+".token_sha256", "want \"sha256:\" and 64 hex digits (config.HashToken of the token)")
		} else if tokens[p.TokenSHA256] {
			bad(key+".token_sha256", "same token as another principal")
		}
		tokens[p.TokenSHA256] = true

		if len(p.Roles) == 0 {
			bad(key+".roles", "at least one role is required (exporter, auditor, operator)")
		}
		roles := map[Role]bool{}
		for j, r := range p.Roles {
			rk := key + ".roles[" + strconv.Itoa(j) + "]"
			switch {
			case !r.Valid():
				bad(rk, "want exporter, auditor or operator, got %.40q", string(r))
			case roles[r]:
				bad(rk, "role %s listed twice", r)
			}
			roles[r] = true
		}
	}
}

func validPrincipalName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}

// checkTPM validates a TPM spec with the tpm package's grammar, plus: a
// device path is absolute and a swtpm port is a number.
func checkTPM(s string) string {
	sp, err := tpm.ParseSpec(s)
	if err != nil {
		return fmt.Sprintf("want device:/dev/tpmrm0, swtpm:HOST:PORT or simulator:DIR, got %.80q", s)
	}
	switch sp.Kind {
	case tpm.KindDevice:
		if !filepath.IsAbs(sp.Arg) {
			return fmt.Sprintf("device path must be absolute, got %.80q", sp.Arg)
		}
	case tpm.KindSwtpm:
		host, port, _ := net.SplitHostPort(sp.Arg)
		if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("swtpm wants HOST:PORT with a port from 1 to 65535, got %.80q", sp.Arg)
		}
	}
	return ""
}

// checkLoopback accepts HOST:PORT where HOST is a loopback IP or
// "localhost" and PORT is 0 to 65535 (0: any free port, for tests).
func checkLoopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("want a loopback HOST:PORT such as 127.0.0.1:8443, got %.80q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("bad port %.20q", port)
	}
	if host == "localhost" {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Sprintf("must be a loopback address (127.0.0.0/8, ::1 or localhost), got %.80q", host)
	}
	return ""
}

func (c *Config) validateSync(bad func(key, format string, a ...any)) {
	s := c.Sync
	if s.OutboxQuota <= 0 {
		bad("sync.outbox_quota", "must be positive, got %d", s.OutboxQuota)
	}
	if s.Broker == "" {
		for key, v := range map[string]string{"sync.archive_key": s.ArchiveKey, "sync.ca": s.CA, "sync.cert": s.Cert, "sync.key": s.Key} {
			if v != "" {
				bad(key, "set without sync.broker")
			}
		}
		return
	}
	switch {
	case strings.HasPrefix(s.Broker, "tcp://"):
		if reason := checkPlainBroker(s.Broker); reason != "" && !s.InsecureTCP {
			bad("sync.broker", "%s", reason)
		}
	case strings.HasPrefix(s.Broker, "ssl://"):
		if s.CA == "" {
			bad("sync.ca", "required with an ssl:// broker: the broker's certificate is always verified")
		}
	default:
		bad("sync.broker", "want tcp://HOST:PORT or ssl://HOST:PORT, got %.80q", s.Broker)
	}
	if s.ArchiveKey == "" {
		bad("sync.archive_key", "required with sync.broker: receipts must verify against the archive's key")
	}
	if s.ArchiveOrigin != "" && strings.ContainsAny(s.ArchiveOrigin, " \t\n+/") {
		bad("sync.archive_origin", "the archive's name has a space, '+' or '/': %.80q", s.ArchiveOrigin)
	}
	if (s.Cert == "") != (s.Key == "") {
		bad("sync.cert", "sync.cert and sync.key go together")
	}
	if s.Window < 0 {
		bad("sync.window", "must not be negative, got %d", s.Window)
	}
	if s.ResendAfter != 0 && s.ResendAfter < time.Second {
		bad("sync.resend_after", "at least 1s, got %s", s.ResendAfter)
	}
}
