package evidence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Limits bound what ReadDir reads of a pack.
type Limits struct {
	File  int64 // largest file
	Total int64 // all files together
	Files int   // number of files
}

// DefaultLimits suit packs of a few thousand exports.
var DefaultLimits = Limits{File: proof.MaxSize, Total: 8 << 30, Files: 100_000}

// WriteDir writes the pack as the folder dir, which must not exist: the
// files go to a new sibling folder, each synced, which is then renamed to
// dir and the parent synced, so dir holds a whole pack or nothing.
func (p *Pack) WriteDir(dir string) error {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("evidence: %s exists", dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".partial-")
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.Files {
			if !yield(n) {
				return
			}
		}
	})
	dirs := map[string]bool{}
	for _, name := range names {
		if !validPath(name) {
			return fmt.Errorf("evidence: bad path %q", name)
		}
		full := filepath.Join(tmp, filepath.FromSlash(name))
		if d := filepath.Dir(full); !dirs[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			dirs[d] = true
		}
		if err := writeSynced(full, p.Files[name]); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	done = true
	return fsutil.SyncDir(filepath.Dir(dir))
}

func writeSynced(name string, data []byte) error {
	return writeFileSynced(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644, data)
}

// AppendAccess appends a to the access log file at path (created with
// mode 0600) as one JSON line, and syncs the file before it returns.
func AppendAccess(path string, a Access) error {
	line, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return writeFileSynced(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600, append(line, '\n'))
}

// writeFileSynced opens name with flag and perm, writes data and syncs
// the file.
func writeFileSynced(name string, flag int, perm os.FileMode, data []byte) error {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// validPath: a relative slash path of clean, non-empty, non-dot elements.
func validPath(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || len(name) > 1024 {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." || strings.ContainsAny(el, "\\\x00\n") {
			return false
		}
	}
	return true
}

// PathError reports a pack folder entry ReadDir refuses.
type PathError struct {
	Name   string
	Reason string // "not a regular file", "too large", "too many files", "bad path"
}

func (e *PathError) Error() string { return fmt.Sprintf("evidence: %s: %s", e.Name, e.Reason) }

// ReadDir reads the pack folder dir within lim. It refuses symbolic links,
// devices and anything but regular files and folders (never following a
// link), and sizes beyond lim before reading them.
func ReadDir(dir string, lim Limits) (*Pack, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	defer root.Close()
	p := &Pack{Files: map[string][]byte{}}
	var total int64
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return &PathError{name, "not a regular file"}
		}
		if !validPath(name) {
			return &PathError{name, "bad path"}
		}
		if len(p.Files) >= lim.Files {
			return &PathError{name, "too many files"}
		}
		fi, err := root.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return &PathError{name, "not a regular file"}
		}
		if fi.Size() > lim.File || total+fi.Size() > lim.Total {
			return &PathError{name, "too large"}
		}
		f, err := root.OpenFile(name, os.O_RDONLY|noFollow, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, lim.File+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > lim.File {
			return &PathError{name, "too large"}
		}
		total += int64(len(data))
		p.Files[name] = data
		return nil
	})
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("evidence: read %s: %w", dir, err)
	}
	return p, nil
}
