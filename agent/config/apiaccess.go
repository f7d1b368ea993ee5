package config

import (
	"fmt"
	"os/user"
	"strconv"
)

// DefaultMaxInflight is the default of api.max_inflight.
const DefaultMaxInflight = 64 * MiB

// SocketGID resolves api.socket_group to a numeric group id; -1 when unset
// (the socket keeps the agent's own group).
func (a *API) SocketGID() (int, error) {
	if a.SocketGroup == "" {
		return -1, nil
	}
	return lookupGID(a.SocketGroup)
}

// lookupGID resolves a group name or a numeric id >= 0.
func lookupGID(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("want a group name or a gid >= 0, got %d", n)
		}
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("no such group %.64q on this host", g)
	}
	n, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %.64q has a gid that is not a number: %q", g, grp.Gid)
	}
	return n, nil
}

// validateAPIAccess checks api.socket_group (a group name or id, only with
// api.socket; whether the group exists is checked when the agent starts, so
// that a config validates on a host other than its device) and api.max_inflight (at least api.max_body, so one
// export of the largest size always fits).
func (c *Config) validateAPIAccess(bad func(key, format string, a ...any)) {
	a := &c.API
	if a.SocketGroup != "" {
		if a.Socket == "" {
			bad("api.socket_group", "set without api.socket")
		} else if !groupSyntax(a.SocketGroup) {
			bad("api.socket_group", "want a group name (1 to 32 of [A-Za-z0-9._-], not starting with -) or a gid >= 0, got %.64q", a.SocketGroup)
		}
	}
	if a.MaxInflight < a.MaxBody {
		bad("api.max_inflight", "must be at least api.max_body (%d bytes), got %d", int64(a.MaxBody), int64(a.MaxInflight))
	}
}

// groupSyntax: a gid (digits) or a portable group name.
func groupSyntax(g string) bool {
	if g == "" || len(g) > 32 || g[0] == '-' {
		return false
	}
	for _, c := range []byte(g) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
