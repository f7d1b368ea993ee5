package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxTokenFile bounds a --token-file read.
const maxTokenFile = 4 << 10

// tokenEnv is the environment variable a bearer token may come from.
const tokenEnv = "EDGESEAL_TOKEN"

// tokenFlags are a command's token options. A token is read from the file
// of --token-file or from $EDGESEAL_TOKEN, never from the command line:
// argv is visible to every user of the host (ps, /proc/PID/cmdline) and
// lands in shell history. --token is defined only to refuse it by name.
type tokenFlags struct {
	cmd  string
	file *string
	argv *string
}

func addTokenFlags(fs *flag.FlagSet, cmd, help string) *tokenFlags {
	return &tokenFlags{
		cmd:  cmd,
		file: fs.String("token-file", "", help+": a file holding the bearer token (default $"+tokenEnv+")"),
		argv: fs.String("token", "", "refused: a token on the command line is visible to other users; use --token-file or $"+tokenEnv),
	}
}

// get returns the token ("" when none was given); a --token on the
// command line or an unreadable token file is a usage error.
func (t *tokenFlags) get(getenv func(string) string) (string, error) {
	if *t.argv != "" {
		return "", usageErr("%s: --token is not accepted: a token on the command line is visible to every user of this host (ps, /proc) and stays in shell history; put it in a file readable only by you and pass --token-file FILE, or set $%s", t.cmd, tokenEnv)
	}
	if *t.file == "" {
		return getenv(tokenEnv), nil
	}
	tok, err := readTokenFile(*t.file)
	if err != nil {
		return "", usageErr("%s: %v", t.cmd, err)
	}
	return tok, nil
}

// readTokenFile reads a token file: not world-readable, at most 4 KiB,
// one token with surrounding white space (a trailing newline) trimmed.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("token file %s is readable by every user (mode %04o): chmod o-r %s", path, uint32(fi.Mode().Perm()), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s is over %d bytes", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one line or word; want the token alone", path)
	}
	return tok, nil
}
