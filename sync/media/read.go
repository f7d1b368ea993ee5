package media

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// SymlinkError is a receipts folder or a bundle file of a medium that is a
// symbolic link: media brought in from outside could otherwise make the
// reader read, or write its answers, anywhere it can reach.
type SymlinkError struct {
	Path string // the link
	What string // "receipts folder", "bundle file" or "reply file"
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("%s %s is a symbolic link; refusing to follow it (copy the real files onto the media)", e.What, e.Path)
}

// TooManyError is a folder of a medium with more than Max entries.
type TooManyError struct {
	Dir string
	Max int
}

func (e *TooManyError) Error() string {
	return fmt.Sprintf("%s: more than %d entries; not a medium written by edgeseal", e.Dir, e.Max)
}

// readDir is os.ReadDir that stops after MaxEntries entries.
func readDir(dir string) ([]fs.DirEntry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var ents []fs.DirEntry
	for {
		batch, err := d.ReadDir(1024)
		ents = append(ents, batch...)
		if len(ents) > MaxEntries {
			return nil, &TooManyError{Dir: dir, Max: MaxEntries}
		}
		if errors.Is(err, io.EOF) {
			return ents, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// BundleFiles lists the bundle files (*.tar, regular files) of a medium's
// folder, sorted by name (bundle.FileName and <outbox id>.bundle.tar sort
// a device's bundles by checkpoint size). A *.tar that is a symbolic link
// is a *SymlinkError.
func BundleFiles(dir string) ([]string, error) {
	ents, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), bundleExt) {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			return nil, &SymlinkError{Path: filepath.Join(dir, e.Name()), What: "bundle file"}
		}
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// CheckReplies refuses a receipts folder that is a symbolic link
// (*SymlinkError) without making it: PrepareReplies checks it again when
// the first answer is written.
func CheckReplies(dir string) error {
	return checkNoLink(filepath.Join(dir, ReceiptsDir), "receipts folder")
}

// PrepareReplies makes the medium's receipts folder and returns its path;
// a receipts folder that is a symbolic link is a *SymlinkError.
func PrepareReplies(dir string) (string, error) {
	out := filepath.Join(dir, ReceiptsDir)
	if err := checkNoLink(out, "receipts folder"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return out, nil
}

// WriteReply writes the archive's answer to the bundle file name into the
// receipts folder out (from PrepareReplies), durably, and returns its
// path.
func WriteReply(out, name string, accepted bool, reply []byte) (string, error) {
	p := filepath.Join(out, ReplyName(name, accepted))
	return p, fsutil.WriteFileAtomic(p, reply, 0o644)
}

// ReadBundle reads at most max bytes of a bundle file that must not be a
// symbolic link; a longer file is cut at max, for the bundle reader to
// refuse.
func ReadBundle(path string, max int64) ([]byte, error) {
	f, err := openNoLink(path, "bundle file")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// ListReplies lists the receipt (*.receipt.json) and rejection
// (*.rejection.json) files of a receipts folder, sorted; hidden files and
// what is not a regular file are skipped.
func ListReplies(dir string) (receipts, rejections []string, err error) {
	ents, err := readDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch {
		case strings.HasSuffix(e.Name(), ReceiptSuffix):
			receipts = append(receipts, filepath.Join(dir, e.Name()))
		case strings.HasSuffix(e.Name(), RejectionSuffix):
			rejections = append(rejections, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(receipts)
	slices.Sort(rejections)
	return receipts, rejections, nil
}

// ReadReply reads a receipt or rejection file of at most MaxReplySize
// bytes that must not be a symbolic link.
func ReadReply(path string) ([]byte, error) {
	f, err := openNoLink(path, "reply file")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxReplySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxReplySize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxReplySize)
	}
	return data, nil
}

// checkNoLink refuses path when it is a symbolic link; a missing path is
// fine.
func checkNoLink(path, what string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &SymlinkError{Path: path, What: what}
	}
	return nil
}

// openNoLink opens a file that must not be a symbolic link, and checks
// that the file opened is the one looked at (not swapped for a link in
// between).
func openNoLink(path, what string) (*os.File, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, &SymlinkError{Path: path, What: what}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, &SymlinkError{Path: path, What: what}
	}
	return f, nil
}
