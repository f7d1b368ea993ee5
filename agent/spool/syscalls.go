package spool

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The system calls behind the spool's result files, moves and
// directory syncs go through the functions below, so that a test can
// fail any of them as a failing disk (or strace's fault injection) does:
// the call is not made and returns the error.

// fault, when set (by tests), is asked before each call below with the
// call's name and the entry it concerns; an error it returns is the
// call's result and the call is not made.
var fault func(call, name string) error

func injected(call, name string) error {
	if fault == nil {
		return nil
	}
	return fault(call, name)
}

func sysOpenat(dirfd int, name string, flags int, perm uint32) (int, error) {
	if err := injected("openat", name); err != nil {
		return -1, err
	}
	return unix.Openat(dirfd, name, flags, perm)
}

func sysRenameat(olddirfd int, oldname string, newdirfd int, newname string) error {
	if err := injected("renameat", oldname); err != nil {
		return err
	}
	return unix.Renameat(olddirfd, oldname, newdirfd, newname)
}

func sysUnlinkat(dirfd int, name string) error {
	if err := injected("unlinkat", name); err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, 0)
}

func sysFsync(fd int, name string) error {
	if err := injected("fsync", name); err != nil {
		return err
	}
	return unix.Fsync(fd)
}

func sysFstatat(dirfd int, name string, st *unix.Stat_t) error {
	if err := injected("fstatat", name); err != nil {
		return err
	}
	return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// present reports whether the entry name exists in dirfd (never
// following a link). An error other than "no such entry" is returned:
// a failing disk is no answer, and a name wrongly taken for free would
// have a rename replace what is there.
func present(dirfd int, name string) (bool, error) {
	var st unix.Stat_t
	err := sysFstatat(dirfd, name, &st)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	}
	return false, fmt.Errorf("spool: look up %s: %w", name, err)
}

// isRegular reports whether name in dirfd is a regular file (never
// following a link); false when it is absent or cannot be looked at.
func isRegular(dirfd int, name string) bool {
	var st unix.Stat_t
	return sysFstatat(dirfd, name, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}
