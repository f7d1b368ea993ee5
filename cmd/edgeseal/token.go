package main

import (
	"flag"

	"github.com/edgeseal/edgeseal/agent/api"
)

// tokenEnv is the environment variable a bearer token may come from.
const tokenEnv = api.TokenEnv

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
	tok, err := api.ClientToken(*t.file, getenv)
	if err != nil {
		return "", usageErr("%s: %v", t.cmd, err)
	}
	return tok, nil
}
