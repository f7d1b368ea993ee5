package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SymlinkError is returned by ImportDir when the receipts folder or a
// bundle file of the imported folder is a symbolic link: media brought in
// from outside could otherwise make the archive read, or write its answers,
// anywhere it can reach.
type SymlinkError struct {
	Path string // the link
	What string // "receipts folder" or "bundle file"
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("archive: import: %s %s is a symbolic link; refusing to follow it (copy the real files onto the media)", e.What, e.Path)
}

// checkNoLink refuses path when it is a symbolic link; a missing path is
// fine.
func checkNoLink(path, what string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: import: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &SymlinkError{Path: path, What: what}
	}
	return nil
}

// openNoLink opens a bundle file that must not be a symbolic link, and
// checks that the file opened is the one looked at (not swapped for a link
// in between).
func openNoLink(path string) (*os.File, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, &SymlinkError{Path: path, What: "bundle file"}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, &SymlinkError{Path: path, What: "bundle file"}
	}
	return f, nil
}
