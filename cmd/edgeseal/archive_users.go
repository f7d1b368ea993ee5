package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeseal/edgeseal/archive/api"
)

// roleFlags collects repeated --role flags.
type roleFlags []string

func (r *roleFlags) String() string     { return strings.Join(*r, ",") }
func (r *roleFlags) Set(v string) error { *r = append(*r, v); return nil }

// cmdArchiveUsers: users add NAME --role ROLE... | passwd NAME | list
// [--json] | disable NAME. The accounts of the read API live in the users
// file (api.users_file); a password is read from --password-file or the
// first line of stdin, never from the command line. The running daemon
// reads the file at each sign-in: no restart needed.
func cmdArchiveUsers(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErr("archive users: want add, passwd, list or disable")
	}
	verb := args[0]
	f := newArchiveFlags("archive users " + verb)
	var roles roleFlags
	f.fs.Var(&roles, "role", "add: a role, auditor, operator, policy-admin, decryptor (with auditor: may decrypt what api.decrypt names) or exporter (repeat for several; required)")
	pwFile := f.fs.String("password-file", "", "add, passwd: read the password from this file (default: the first line of stdin)")
	asJSON := f.fs.Bool("json", false, "list as JSON (without the password hashes)")
	pos, err := parseInterleaved(f.fs, args[1:])
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if len(pos) != 0 {
			return usageErr("archive users list: unexpected argument %q", pos[0])
		}
	case "add", "passwd", "disable":
		if len(pos) != 1 {
			return usageErr("archive users %s: want one NAME", verb)
		}
	default:
		return usageErr("archive users: unknown %q", verb)
	}
	if verb == "add" && len(roles) == 0 {
		return usageErr("archive users add: --role is required")
	}
	if verb != "add" && len(roles) > 0 {
		return usageErr("archive users %s: --role is for add", verb)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	path := cfg.API.UsersFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "users.json")
	}
	users := api.OpenUsers(path)
	now := time.Now()
	switch verb {
	case "list":
		list, err := users.List()
		if err != nil {
			return err
		}
		for i := range list {
			list[i].Hash = ""
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLES\tSTATUS\tCREATED\tCHANGED")
		for _, u := range list {
			status := "active"
			if u.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Roles, ","), status, u.Created, u.Changed)
		}
		return tw.Flush()
	case "disable":
		if err := users.Disable(pos[0], now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "disabled %s (its sessions end at their next call)\n", pos[0])
		return nil
	}
	pw, err := readPassword(*pwFile, stdin)
	if err != nil {
		return err
	}
	if verb == "add" {
		if err := users.Add(pos[0], roles, pw, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s (%s) to %s\n", pos[0], strings.Join(roles, ","), path)
		return nil
	}
	if err := users.SetPassword(pos[0], pw, now); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "changed the password of %s\n", pos[0])
	return nil
}

// readPassword reads a password from file (not through a symlink) or
// the first line of stdin, bounded.
func readPassword(file string, stdin io.Reader) (string, error) {
	var data []byte
	if file != "" {
		fi, err := os.Lstat(file)
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("password file %s: not a regular file (a symlink is refused)", file)
		}
		if data, err = os.ReadFile(file); err != nil {
			return "", err
		}
	} else {
		var err error
		if data, err = io.ReadAll(io.LimitReader(stdin, api.MaxPasswordLen+2)); err != nil {
			return "", err
		}
	}
	if len(data) > api.MaxPasswordLen+2 {
		return "", errors.New("password longer than 1024 bytes")
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", errors.New("no password (give it on stdin or with --password-file)")
	}
	return pw, nil
}
