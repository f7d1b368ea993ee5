package fsutil

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ReadLimited reads the file at path and fails when it is larger than
// limit bytes (it reads at most limit+1). A pipe is read like a file
// (`--token-file <(…)`); use ReadRegular for inputs that must be files.
func ReadLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, path, limit)
}

// ReadRegular is ReadLimited for an input that must be a regular file (a
// link to one is followed): a FIFO, device or socket is refused at once
// instead of blocking in open until a writer comes, and a file larger
// than limit before anything is read. It opens without blocking and
// checks the file it opened, so nothing swapped in between a check and
// the open is read.
func ReadRegular(path string, limit int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		// As os.ReadFile says it.
		return nil, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > int64(limit) {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return readAtMost(f, path, limit)
}

func readAtMost(f *os.File, path string, limit int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
