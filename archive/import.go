package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// ReceiptsDir is the folder ImportDir writes answers to, inside the
// imported folder.
const ReceiptsDir = "receipts"

// Imported is the outcome of one imported bundle file.
type Imported struct {
	File     string // bundle file name
	Device   string // "<site>/<name>" from the bag's origin
	Accepted bool
	Reply    string // path of the receipt or rejection written
	Err      error  // *RejectedError when refused
}

// ImportDir takes the bundle files (*.tar) of a folder brought on
// removable media through Receive, in file name order (bundle.FileName
// sorts a device's bundles by checkpoint size), as the device named by
// each bag's origin. Answers go to DIR/receipts/<file>.receipt.json for
// accepted bundles and <file>.rejection.json for refused ones, written
// atomically. It stops at the first failure that is not a refusal. A
// receipts folder or a *.tar that is a symbolic link is refused
// (*SymlinkError) before anything is taken.
func (a *Archive) ImportDir(ctx context.Context, dir string) ([]Imported, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".tar") {
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
	out := filepath.Join(dir, ReceiptsDir)
	if err := checkNoLink(out, "receipts folder"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	var res []Imported
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		im, err := a.importFile(ctx, filepath.Join(dir, name), out)
		if err != nil {
			return res, err
		}
		res = append(res, im)
	}
	return res, nil
}

func (a *Archive) importFile(ctx context.Context, path, out string) (Imported, error) {
	name := filepath.Base(path)
	im := Imported{File: name, Device: "import/unknown"}
	f, err := openNoLink(path)
	if err != nil {
		return im, err
	}
	lim := a.opts.Limits
	raw, err := io.ReadAll(io.LimitReader(f, lim.Total+int64(lim.Files+2)*1536+1024+1))
	f.Close()
	if err != nil {
		return im, fmt.Errorf("archive: import %s: %w", name, err)
	}
	if b, err := bundle.Read(bytes.NewReader(raw), lim); err == nil {
		if o, ok := bagOrigin(b.Files[bundle.PathBagInfo]); ok {
			if dev, ok := strings.CutPrefix(o, "edgeseal/"); ok && wire.CheckDevice(dev) == nil {
				im.Device = dev
			}
		}
	}
	site, dev, _ := cutDevice(im.Device)
	reply, err := a.Receive(ctx, site, dev, raw)
	var rj *RejectedError
	switch {
	case err == nil:
		im.Accepted = true
		im.Reply = filepath.Join(out, strings.TrimSuffix(name, ".tar")+".receipt.json")
	case errors.As(err, &rj):
		im.Err = err
		im.Reply = filepath.Join(out, strings.TrimSuffix(name, ".tar")+".rejection.json")
	default:
		return im, err
	}
	if err := fsutil.WriteFileAtomic(im.Reply, reply, 0o644); err != nil {
		return im, err
	}
	return im, nil
}
