package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Help for every command: `edgeseal CMD --help` (or -h, -help, or
// `edgeseal help CMD`) prints the command's lines of the usage text and its
// flags with their defaults, and exits 0. parseInterleaved turns the flag
// package's ErrHelp into a *helpError that carries the command's FlagSet, so
// a command gets --help by parsing its flags with parseInterleaved before it
// opens anything; run prints the help. A group of subcommands (`tpm`,
// `service`, `archive devices`) answers --help from the usage text alone,
// before any command runs.

// helpError is returned by parseInterleaved when the arguments ask for help.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string { return e.fs.Name() + ": help requested" }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// flaglessCommands are leaves of the usage text that parse no flags: their
// --help is answered from the usage text.
var flaglessCommands = map[string]bool{"version": true, "help": true}

func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// wantsHelp reports whether a help flag comes before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelpArg(a) {
			return true
		}
	}
	return false
}

// leadingWords are the arguments before the first flag.
func leadingWords(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i]
		}
	}
	return args
}

// usageEntry is one command of the usage text.
type usageEntry struct {
	path  string   // "archive devices approve"
	lines []string // the usage lines it is written in
	flags []string // the flags its part of the text names, without dashes
}

var (
	cmdWord   = regexp.MustCompile(`^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$`)
	altWord   = regexp.MustCompile(`(?:^|\s)\|\s+([a-z][a-z0-9-]*)(?:\s|$)`)
	flagInUse = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
)

// parseUsage reads the usage text: each "  edgeseal ..." line starts a
// block, indented lines continue it. A block's command words run up to the
// first flag or placeholder; "a|b" and "| b ..." name alternatives.
func parseUsage(text string) []usageEntry {
	var blocks [][]string
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "  edgeseal "):
			blocks = append(blocks, []string{l})
		case strings.TrimSpace(l) != "" && strings.HasPrefix(l, "  ") && len(blocks) > 0:
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], l)
		}
	}
	var out []usageEntry
	for _, lines := range blocks {
		text := strings.Join(lines, " ")
		toks := strings.Fields(strings.TrimPrefix(strings.TrimSpace(text), "edgeseal"))
		var words []string
		for _, t := range toks {
			if !cmdWord.MatchString(t) {
				break
			}
			words = append(words, t)
		}
		if len(words) == 0 {
			continue
		}
		// Segments: the first names words; each "| word ..." an alternative
		// to the last word.
		locs := altWord.FindAllStringSubmatchIndex(text, -1)
		type seg struct {
			last string
			text string
		}
		start := 0
		segs := []seg{}
		last := words[len(words)-1]
		for _, m := range locs {
			segs = append(segs, seg{last, text[start:m[0]]})
			last, start = text[m[2]:m[3]], m[0]
		}
		segs = append(segs, seg{last, text[start:]})
		base := strings.Join(words[:len(words)-1], " ")
		for _, s := range segs {
			var flags []string
			for _, f := range flagInUse.FindAllStringSubmatch(s.text, -1) {
				flags = append(flags, f[1])
			}
			for _, alt := range strings.Split(s.last, "|") {
				path := strings.TrimSpace(base + " " + alt)
				out = append(out, usageEntry{path: path, lines: lines, flags: flags})
			}
		}
	}
	return out
}

// usageFamily returns the usage lines of path and of its subcommands, and
// whether path is a command (leaf) and whether it has subcommands (group).
func usageFamily(path string) (lines []string, leaf, group bool) {
	seen := map[string]bool{}
	for _, e := range parseUsage(usage) {
		switch {
		case e.path == path:
			leaf = true
		case strings.HasPrefix(e.path, path+" "):
			group = true
		default:
			continue
		}
		for _, l := range e.lines {
			if !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
		}
	}
	return lines, leaf, group
}

// printHelp writes the usage lines of path and the flags of fs (may be nil).
func printHelp(w io.Writer, path string, fs *flag.FlagSet) {
	lines, _, _ := usageFamily(path)
	fmt.Fprintln(w, "usage:")
	if len(lines) == 0 {
		fmt.Fprintf(w, "  edgeseal %s [flags]\n", path)
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if fs == nil {
		return
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nflags of edgeseal %s:\n", path)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// helpBeforeRun answers --help for groups and flagless commands, which no
// FlagSet answers; it reports whether it did.
func helpBeforeRun(args []string, w io.Writer) bool {
	if !wantsHelp(args) || (args[0] == "help" && len(args) > 1 && !isHelpArg(args[1])) {
		return false // `help CMD` runs CMD --help
	}
	words := leadingWords(args)
	for n := len(words); n > 0; n-- {
		path := strings.Join(words[:n], " ")
		_, leaf, group := usageFamily(path)
		switch {
		case leaf && flaglessCommands[path]:
			printHelp(w, path, nil)
			return true
		case leaf:
			return false // its FlagSet answers
		case group && n == len(words):
			printHelp(w, path, nil)
			return true
		case group:
			return false // an unknown subcommand: the command says so
		}
	}
	return false
}

// helpAfterRun turns a command's help request into its help and no error.
func helpAfterRun(err error, args []string, w io.Writer) error {
	var he *helpError
	switch {
	case errors.As(err, &he):
		printHelp(w, he.fs.Name(), he.fs)
		return nil
	case errors.Is(err, flag.ErrHelp):
		printHelp(w, strings.Join(leadingWords(args), " "), nil)
		return nil
	}
	return err
}

// usageFor is what a usage error of args prints after the error: the usage
// lines of the command args name (the longest run of its leading words that
// is a command or a group of them) and how to get its flags; every
// command's lines when args name none.
func usageFor(args []string) string {
	words := leadingWords(args)
	if len(words) > 1 && words[0] == "help" {
		words = words[1:]
	}
	for n := len(words); n > 0; n-- {
		path := strings.Join(words[:n], " ")
		if lines, _, _ := usageFamily(path); len(lines) > 0 {
			return "usage:\n" + strings.Join(lines, "\n") + "\n(edgeseal help " + path + ": its flags; edgeseal help: every command)\n"
		}
	}
	return usage
}

// usage is the commands' synopsis: printed on a usage error naming no command and by
// `edgeseal help`; each command's help shows its lines of it.
const usage = `usage:
  edgeseal agent --config FILE
  edgeseal agent enroll --config FILE [--out REQUEST.json] [--note TEXT] [--no-mqtt] [--timeout 30s]
  edgeseal agent rotate-key --config FILE --reason TEXT
  edgeseal agent enroll --config FILE --answer CHALLENGE.json [--out RESPONSE.json]
  edgeseal export [--socket PATH | --url https://127.0.0.1:PORT --cacert CA.pem] [--token-file FILE]
                  --workflow W --app A [--purpose P] [--schema S] [--classification C]
                  [--retention R] [--destination D] [--id ID] [--content-type TYPE] FILE|-
  edgeseal verify BUNDLE|DIR... --trust DEVICE.json [--chain | --each] [--previous PREV]
                  [--state-out FILE] [--quiet] [--json] [--purged PURGE-STATEMENT.json]...
                  (a DIR is its *.bundle.tar by checkpoint size; --chain is the default;
                  exit 0 verified, 1 not verified, 2 usage or unreadable input)
  edgeseal verify PROOF.json|PACK_DIR... [--trust DEVICE.json] [--archive-key PUB] [--quiet] [--json]
                  (a proof of one export, or an evidence pack; --trust and --archive-key pin
                  what the proof carries; exit 0 verified, 1 not verified, 2 usage)
  edgeseal proof EXPORT-ID (--bundles DIR|FILE... [--receipts DIR]...
                           | --archive URL --token-file FILE [--cacert CA.pem])
                 --trust DEVICE.json... --archive-key PUB [--principal P] [--device SITE/NAME] [-o FILE]
                 (an id that names exports of several principals or devices lists them; exit 2;
                 with --archive the archive builds the proof, written only if it verifies
                 pinned to --trust and --archive-key)
  edgeseal evidence (--export ID... [--principal P] | --device SITE/NAME --from T --to T
                    | --case ID --holds HOLD-STATEMENT.json...) --bundles DIR|FILE...
                    --trust DEVICE.json... --archive-key PUB [--receipts DIR]... [--requester WHO]
                    [--access-log FILE] [--encrypt-to AUDITOR.key.pub] -o PACK_DIR|SEALED_FILE
  edgeseal evidence (--export ID [--device SITE/NAME] [--principal P] | --device SITE/NAME --from T --to T
                    | --case ID [--device SITE/NAME] [--principal P] [--from T] [--to T]) --archive URL --token-file FILE
                    [--cacert CA.pem] [--trust DEVICE.json] [--archive-key PUB] [--decrypt [--reason TEXT]]
                    [--encrypt-to AUDITOR.key.pub] -o PACK_DIR|SEALED_FILE
                    (the archive builds the pack, with consistency proofs, and logs it as your
                    read; it is checked, pinned to --trust/--archive-key when given, then written;
                    --decrypt: the archive decrypts the payloads if your roles may see their
                    classification, each decryption logged with the why, --reason or the --case;
                    --encrypt-to: the pack is written as one file sealed to your own key)
  edgeseal evidence keygen --out AUDITOR.key
                    (your auditor key pair: AUDITOR.key, 0600, and AUDITOR.key.pub)
  edgeseal evidence open --key AUDITOR.key [--trust DEVICE.json] [--archive-key PUB]
                    -o PACK_DIR SEALED_FILE
                    (opens a sealed pack, checks it, writes the pack folder)
  edgeseal tpm enroll --tpm SPEC --state DIR --site SITE --device NAME [--out DEVICE.json]
                     [--recovery-key RECOVERY.pub | --no-recovery]
                     [--pcr-policy-key PCR-KEY.pub | --pcr-policy=pcr] [--policy-admins ADMINS.json]
                     [--insecure-simulator]   (required for --tpm simulator:DIR)
  edgeseal tpm recovery-keygen --out RECOVERY.key
  edgeseal tpm recover --config AGENT.yaml --recovery-key RECOVERY.key [--wrap FILE] [--out DEVICE.json]
  edgeseal tpm rewrap --config AGENT.yaml --recovery-key NEW.pub
  edgeseal tpm pcr-key new --out PCR-KEY
  edgeseal tpm authorize-pcrs --key PCR-KEY --device SITE/NAME (--pcrs 0=HEX,2=HEX,... | --from-quote FILE)
                              [--out pcr-authorization.json]
  edgeseal agent authorize-pcrs --config FILE pcr-authorization.json
  edgeseal agent tls-cert --out-dir DIR [--host 127.0.0.1,localhost] [--days 825]
                  (the api.tcp listener's certificate and key, signed by a one-use CA whose key
                  is discarded; prints the config lines and api-ca.pem, the file clients trust)
  edgeseal policy keygen --out FILE --name NAME [--ecdsa] [--admins ADMINS.json [--threshold M]]
  edgeseal policy sign --key FILE [--in SIGNED] POLICY.yaml --out SIGNED
  edgeseal policy verify --admins FILE [--threshold M] SIGNED
  edgeseal policy diff OLD NEW
  edgeseal policy history --config AGENT.yaml | --archive-config ARCHIVE.yaml --device SITE/NAME | BUNDLE...
  edgeseal demo [--dir DIR]
  edgeseal doctor [--config AGENT.yaml] [--trust DEVICE.json] [--token-file FILE]
  edgeseal archive --config FILE
  edgeseal archive devices list [--json] | approve SITE/NAME --key KEYID [--by WHO] [--no-activation]
                           | revoke SITE/NAME --reason R      [--config FILE | --data-dir DIR]
                           | rekey SITE/NAME --key KEYID [--no-activation] [--reason R] [--by WHO]
                                 [--operator-key OPERATOR.key] (daemon stopped)
                           | revoke-key SITE/NAME KEYID --reason R [--by WHO]
                           (approve, revoke, revoke-key: --operator-key OPERATOR.key, required with operator_keys;
                            list: with operator_keys, the archive log's device states)
  edgeseal archive enroll-file REQUEST.json [--challenge FILE] [--config FILE | --data-dir DIR]
  edgeseal archive enroll-file --response RESPONSE.json      [--config FILE | --data-dir DIR]
  edgeseal archive import DIR [--wait 2m]                     [--config FILE | --data-dir DIR]
                       (daemon stopped or running: a running daemon takes the bundles through
                        DATA_DIR/operator/import/; --wait bounds the wait for each answer;
                        per bundle: accepted, duplicate or REFUSED with the checks)
  edgeseal archive check                                      [--config FILE | --data-dir DIR]   (daemon stopped)
  edgeseal archive migrate-log                                [--config FILE | --data-dir DIR]   (daemon stopped)
                       (moves the archive log from the journal engine, DATA_DIR/log, to posix,
                        DATA_DIR/tlog: the same tree, old receipts stay valid; the journal is set
                        aside in DATA_DIR/log.migrated; run again, it changes nothing)
  edgeseal archive key show | rotate [--overlap 168h] [--new-key pkcs11:URI]
                       | import-pkcs11 --key pkcs11:URI [--generate]
                       [--module LIB] [--pin-file F | --pin-env VAR] [--config FILE | --data-dir DIR]
  edgeseal archive content-key new [--generate-wrap-key] | rotate [--escrow RECOVERY.key.pub] | show   [--out FILE]
                       | restore --seq N --escrow-file N.escrow.json --recovery-key RECOVERY.key
                       [--config FILE | --data-dir DIR]   (daemon stopped, but rotate without --escrow:
                        the running daemon takes it; --wait 1m bounds the wait for its answer)
  edgeseal archive operator keygen --out FILE
  edgeseal archive hold set|release (--device SITE/NAME | --export ID | --bundle sha256:..) --case ID
                       --key OPERATOR.key [--by WHO] [--reason R] [--config FILE]   (daemon stopped)
  edgeseal archive purge --key OPERATOR.key [--bundle sha256:..]... [--dry-run] [--by WHO] [--reason R]
                       [--statement-out FILE] [--config FILE]                  (daemon stopped)
  edgeseal archive users add NAME --role ROLE [--role ROLE]... | passwd NAME | list [--json] | disable NAME
                        [--password-file FILE]  (else the first line of stdin)  [--config FILE | --data-dir DIR]
  edgeseal verify receipt --archive-key PUB [--archive-name NAME] RECEIPT...
  edgeseal verify archive --archive-key PUB... [--archive-name NAME] [--trust DEVICE.json]... [--log DIR]
                  [--json] BUNDLE|RECEIPT|DIR...
                  (the archive log checkpoints the devices were shown, from their bundles'
                  archive.checkpoint records and from receipts, a DIR searched for *.bundle.tar and
                  *.receipt.json; checks archive.signature, archive.fork, archive.chain and, with
                  --log (a copy of the archive's /log/ tiles), archive.log; with --trust, a device's
                  bundles are verified first (devices.verified); exit 0 no inconsistency,
                  1 the archive showed inconsistent logs or a check failed, 2 usage)
  edgeseal bundles export --config AGENT.yaml --to DIR
  edgeseal bundles import-receipts --config AGENT.yaml [--archive-key FILE] DIR
  edgeseal service install|uninstall|start|stop|status --kind agent|archive [--purge] [--root DIR]
  edgeseal version | --version
  edgeseal help [COMMAND...]      (or COMMAND --help: its usage and flags)
`
