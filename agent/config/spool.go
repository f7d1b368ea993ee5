package config

import (
	"os/user"
	"strconv"
)

// validateSpoolAccess checks spool.mode and spool.group: permission bits
// with owner rwx and no world write; a group that exists on this host (a
// name or a numeric id).
func (c *Config) validateSpoolAccess(bad func(key, format string, a ...any)) {
	s := &c.Spool
	if s.Mode != 0 {
		switch {
		case s.Mode&0o700 != 0o700:
			bad("spool.mode", "the owner (the agent) needs rwx, got %04o", uint32(s.Mode))
		case s.Mode&0o002 != 0:
			bad("spool.mode", "must not be world-writable (anyone could export as spool.principal), got %04o", uint32(s.Mode))
		}
	}
	if s.Group == "" {
		return
	}
	if n, err := strconv.Atoi(s.Group); err == nil {
		if n < 0 {
			bad("spool.group", "want a group name or a gid >= 0, got %d", n)
		}
		return
	}
	if _, err := user.LookupGroup(s.Group); err != nil {
		bad("spool.group", "no such group %.64q on this host", s.Group)
	}
}
