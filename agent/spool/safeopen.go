package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileID is what a poll saw of one directory entry (lstat, never
// following a symbolic link).
type fileID struct {
	dev, ino uint64
	nlink    uint64
	typ      fs.FileMode // fs.ModeType bits; 0 for a regular file
	size     int64
	mtime    int64 // ns
	ctime    int64 // ns
}

func fileIDOf(info fs.FileInfo) fileID {
	id := fileID{typ: info.Mode().Type(), size: info.Size(), mtime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok { // os.Lstat's
		id.dev, id.ino, id.nlink, id.ctime = st.Dev, st.Ino, uint64(st.Nlink), st.Ctim.Nano()
	}
	return id
}

func fileIDOfStat(st *unix.Stat_t) fileID {
	id := fileID{dev: st.Dev, ino: st.Ino, nlink: uint64(st.Nlink), size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		id.typ = fs.ModeDir
	case unix.S_IFLNK:
		id.typ = fs.ModeSymlink
	case unix.S_IFIFO:
		id.typ = fs.ModeNamedPipe
	case unix.S_IFSOCK:
		id.typ = fs.ModeSocket
	case unix.S_IFCHR:
		id.typ = fs.ModeDevice | fs.ModeCharDevice
	default:
		id.typ = fs.ModeDevice
	}
	return id
}

// kind names a file type for a refusal.
func kind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t == 0:
		return "a regular file"
	}
	return "not a regular file"
}

// UnsafeFileError refuses a spool entry that is not a regular file with
// exactly one link (a symbolic link, a hard link, a FIFO, a directory,
// a device): taking it could make the agent journal and ship a file its
// writer cannot read. The pair moves to rejected/, the refusal is
// journaled, and nothing is read through it.
type UnsafeFileError struct {
	Name   string // the entry in the spool folder
	Field  string // "file" or "sidecar"
	Reason string // "is a symbolic link", "has 2 links", ...
}

func (e *UnsafeFileError) Error() string {
	return fmt.Sprintf("spool: %s %s %s; only regular files with one link are taken", e.Field, e.Name, e.Reason)
}

// errChanged: the entry is not the one the poll saw (replaced, or still
// being written); it is looked at again by the next poll.
var errChanged = errors.New("spool: changed since the poll")

// openChecked opens name in the directory dirfd without following a
// symbolic link and without blocking (a FIFO), and checks the descriptor:
// a regular file with one link whose device, inode, size and mtime are
// those the poll saw. A refusal is an *UnsafeFileError; an entry that
// changed or vanished is errChanged (wrapped).
func openChecked(dirfd int, name, field string, saw fileID) (*os.File, error) {
	fd, err := sysOpenat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, &UnsafeFileError{Name: name, Field: field, Reason: "is a symbolic link"}
	case errors.Is(err, unix.ENXIO):
		return nil, &UnsafeFileError{Name: name, Field: field, Reason: "is a socket"}
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%s %s: %w", field, name, errChanged)
	case err != nil:
		return nil, fmt.Errorf("spool: open %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: fstat %s: %w", name, err)
	}
	got := fileIDOfStat(&st)
	var refuse string
	switch {
	case got.typ != 0:
		refuse = "is " + kind(got.typ)
	case got.nlink != 1:
		refuse = fmt.Sprintf("has %d links (a hard link)", got.nlink)
	}
	if refuse != "" {
		f.Close()
		return nil, &UnsafeFileError{Name: name, Field: field, Reason: refuse}
	}
	if got.dev != saw.dev || got.ino != saw.ino || got.size != saw.size || got.mtime != saw.mtime {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", field, name, errChanged)
	}
	return f, nil
}

// readChecked reads at most n bytes of f, which must be exactly size
// bytes (errChanged otherwise).
func readChecked(f *os.File, size, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, n))
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", f.Name(), err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("%s: %w", f.Name(), errChanged)
	}
	return b, nil
}

// SwappedError: the entry moved into done/ or rejected/ is not the file
// that was read (it was replaced between the read and the move). The
// journal holds what was read from the checked descriptor; the moved
// entry is not that file.
type SwappedError struct {
	Name, To string
}

func (e *SwappedError) Error() string {
	return fmt.Sprintf("spool: %s was replaced before it was moved; %s is not the file journaled", e.Name, e.To)
}

// moveChecked renames name in dirfd to to in todirfd and checks that the
// entry moved is the inode want (when want.ino is not 0).
func moveChecked(dirfd int, name string, todirfd int, to string, want fileID) error {
	if err := sysRenameat(dirfd, name, todirfd, to); err != nil {
		return fmt.Errorf("spool: move %s: %w", name, err)
	}
	if want.ino == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := sysFstatat(todirfd, to, &st); err != nil {
		return fmt.Errorf("spool: check moved %s: %w", to, err)
	}
	if st.Dev != want.dev || st.Ino != want.ino {
		return &SwappedError{Name: name, To: to}
	}
	return nil
}

// openDir opens a directory of the spool without following a symbolic
// link.
func openDir(dirfd int, path string) (int, error) {
	fd, err := sysOpenat(dirfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("spool: open folder %s: %w", path, err)
	}
	return fd, nil
}

// prepareDir creates the spool folder (0750 unless opts.Mode says
// otherwise) with done/ and rejected/ (0750, the agent's own), refuses a
// folder that is a symbolic link, and applies opts.Mode and opts.Group.
func prepareDir(opts Options) error {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o750
	}
	if err := CheckMode(mode); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Dir, mode); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	fi, err := os.Lstat(opts.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return &ConfigError{Field: "Dir", Reason: opts.Dir + " is " + kind(fi.Mode().Type()) + ", want a directory"}
	}
	if opts.Group != "" {
		gid, err := LookupGroup(opts.Group)
		if err != nil {
			return err
		}
		if err := os.Lchown(opts.Dir, -1, gid); err != nil {
			return fmt.Errorf("spool: group %s: %w", opts.Group, err)
		}
	}
	if opts.Mode != 0 {
		m := opts.Mode
		if opts.Group != "" {
			m |= fs.ModeSetgid // files dropped in keep the folder's group
		}
		if err := os.Chmod(opts.Dir, m); err != nil {
			return fmt.Errorf("spool: mode: %w", err)
		}
	}
	for _, sub := range []string{DoneDir, RejectedDir} {
		d := filepath.Join(opts.Dir, sub)
		if err := os.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("spool: %w", err)
		}
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			return &ConfigError{Field: "Dir", Reason: d + " must be a directory (not a symbolic link)"}
		}
	}
	return nil
}

// CheckMode checks a spool folder mode: permission bits only, the owner
// (the agent) has rwx, and it is not world-writable.
func CheckMode(m fs.FileMode) error {
	switch {
	case m&^fs.ModePerm != 0:
		return &ConfigError{Field: "Mode", Reason: fmt.Sprintf("%v: want permission bits only", m)}
	case m&0o700 != 0o700:
		return &ConfigError{Field: "Mode", Reason: fmt.Sprintf("%04o: the owner (the agent) needs rwx", uint32(m))}
	case m&0o002 != 0:
		return &ConfigError{Field: "Mode", Reason: fmt.Sprintf("%04o: must not be world-writable (anyone could export as the spool's principal)", uint32(m))}
	}
	return nil
}

// LookupGroup resolves a group name or numeric id.
func LookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, &ConfigError{Field: "Group", Reason: fmt.Sprintf("%.64q: no such group", g)}
	}
	n, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, &ConfigError{Field: "Group", Reason: fmt.Sprintf("%.64q: gid %q is not a number", g, grp.Gid)}
	}
	return n, nil
}

// writeAt writes a result file durably in the directory dirfd: a fresh
// temp file (O_EXCL, O_NOFOLLOW), fsync, renameat over name, fsync of the
// directory. Relative to the descriptor, so a done/ or rejected/ swapped
// for a link after it was opened is never written through.
func writeAt(dirfd int, name string, data []byte, perm uint32) error {
	tmp := "." + name + ".tmp-" + strconv.FormatUint(uint64(os.Getpid()), 10)
	fd, err := sysOpenat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if errors.Is(err, unix.EEXIST) { // left by a crash
		if err = sysUnlinkat(dirfd, tmp); err == nil {
			fd, err = sysOpenat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		}
	}
	if err != nil {
		return fmt.Errorf("spool: create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(fs.FileMode(perm))
	}
	if err == nil {
		err = sysFsync(int(f.Fd()), tmp)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = sysRenameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	if err := sysFsync(dirfd, "."); err != nil {
		return fmt.Errorf("spool: sync after %s: %w", name, err)
	}
	return nil
}
