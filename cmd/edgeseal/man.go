package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// The manual page edgeseal(1) is written from the usage text and each
// command's --help (its usage lines and flags with their defaults) by
// `edgeseal help --man`; packaging/build runs it and ships the page, so
// the page and the binary never disagree.

// manDescription is the page's DESCRIPTION, one paragraph per entry.
var manDescription = []string{
	"edgeseal keeps the chain of custody of exports from no-code tools (n8n, Node-RED, Appsmith, desktop automation).",
	"edgeseal agent journals every export, and every refused attempt, in an append-only log on the site, seals it at checkpoints with a key held in the TPM into bundles, and sends the bundles over MQTT to the archive. Its local API answers on a unix socket (and optionally TLS): POST /v1/exports, GET /v1/exports/{id}, GET /v1/status.",
	"edgeseal archive verifies every bundle, stores it write-once and answers with a signed receipt, or a signed refusal naming the check that failed.",
	"edgeseal verify checks bundles and receipts offline against the device's enrolled DEVICE.json; edgeseal doctor checks a site's agent in one command.",
}

// manDate is the page's date: SOURCE_DATE_EPOCH when set (reproducible
// packages), else today.
func manDate(getenv func(string) string) string {
	if n, err := strconv.ParseInt(getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC().Format("2006-01-02")
	}
	return time.Now().UTC().Format("2006-01-02")
}

// roffEscape escapes text for a roff line: backslashes, hyphens (so
// flags copy as ASCII minus) and a leading control character.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// writeLiteral writes lines as a no-fill block.
func writeLiteral(w io.Writer, lines []string) {
	fmt.Fprintln(w, ".nf")
	for _, l := range lines {
		fmt.Fprintln(w, roffEscape(l))
	}
	fmt.Fprintln(w, ".fi")
}

// manCommands are the command paths of the usage text, in its order,
// each once.
func manCommands() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range parseUsage(usage) {
		if !seen[e.path] {
			seen[e.path] = true
			out = append(out, e.path)
		}
	}
	return out
}

// writeMan writes edgeseal(1) in man(7) roff.
func writeMan(ctx context.Context, w io.Writer, getenv func(string) string) error {
	var b bytes.Buffer
	fmt.Fprintln(&b, `.\" edgeseal(1): written by "edgeseal help --man" from the usage text; do not edit.`)
	fmt.Fprintf(&b, ".TH EDGESEAL 1 %q %q \"User Commands\"\n", manDate(getenv), "edgeseal "+version)
	fmt.Fprintln(&b, ".SH NAME")
	fmt.Fprintln(&b, `edgeseal \- chain of custody for no\-code app exports`)
	fmt.Fprintln(&b, ".SH SYNOPSIS")
	var syn []string
	for l := range strings.SplitSeq(strings.TrimSuffix(strings.TrimPrefix(usage, "usage:\n"), "\n"), "\n") {
		syn = append(syn, strings.TrimPrefix(l, "  "))
	}
	writeLiteral(&b, syn)
	fmt.Fprintln(&b, ".SH DESCRIPTION")
	for i, p := range manDescription {
		if i > 0 {
			fmt.Fprintln(&b, ".PP")
		}
		fmt.Fprintln(&b, roffEscape(p))
	}
	fmt.Fprintln(&b, ".SH COMMANDS")
	fmt.Fprintln(&b, "Each command's usage and flags, as printed by")
	fmt.Fprintln(&b, `.B edgeseal \fICOMMAND\fP \-\-help\fR.`)
	quiet := slog.New(slog.DiscardHandler)
	for _, path := range manCommands() {
		var out bytes.Buffer
		args := append(strings.Fields(path), "--help")
		if err := run(ctx, args, &out, quiet); err != nil {
			return fmt.Errorf("man: edgeseal %s --help: %w", path, err)
		}
		text := strings.TrimPrefix(out.String(), "usage:\n")
		fmt.Fprintf(&b, ".SS edgeseal %s\n", roffEscape(path))
		writeLiteral(&b, strings.Split(strings.TrimRight(text, "\n"), "\n"))
	}
	fmt.Fprintln(&b, ".SH EXIT STATUS")
	fmt.Fprintln(&b, "0 on success; 1 when the command failed (for verify: not verified; for doctor: a check failed); 2 on bad usage or unreadable input.")
	fmt.Fprintln(&b, ".SH FILES")
	for _, f := range [][2]string{
		{"/etc/edgeseal/agent.yaml", "the agent's configuration"},
		{"/etc/edgeseal/archive.yaml", "the archive's configuration"},
		{"/etc/edgeseal/policy.yaml", "the export policy the agent enforces (an example is in /usr/share/doc/edgeseal/examples/)"},
		{"/usr/share/doc/edgeseal/", "README.md and docs/: installation, operation, formats"},
	} {
		fmt.Fprintln(&b, ".TP")
		fmt.Fprintln(&b, roffEscape(f[0]))
		fmt.Fprintln(&b, roffEscape(f[1]))
	}
	fmt.Fprintln(&b, ".SH SEE ALSO")
	fmt.Fprintln(&b, ".BR mosquitto (8),")
	fmt.Fprintln(&b, ".BR systemctl (1),")
	fmt.Fprintln(&b, ".BR tpm2_pcrread (1)")
	_, err := w.Write(b.Bytes())
	return err
}

// cmdMan is `edgeseal help --man`.
func cmdMan(ctx context.Context, stdout io.Writer) error {
	return writeMan(ctx, stdout, os.Getenv)
}
