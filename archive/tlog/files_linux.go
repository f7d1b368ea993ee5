package tlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

const noFollow = unix.O_NOFOLLOW

// openNoFollow opens rel beneath dir with openat2: no symbolic link in
// any component, nothing outside dir. Kernels without openat2 (before
// 5.6) fall back to openPortable.
func openNoFollow(dir, rel string) (*os.File, error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tlog: open %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(dfd, rel, how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), rel), nil
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS):
			return openPortable(dir, rel)
		case errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("tlog: %s: %w", rel, fs.ErrNotExist)
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR):
			return nil, &NotRegularError{Path: rel}
		default:
			return nil, fmt.Errorf("tlog: open %s: %w", rel, err)
		}
	}
}
