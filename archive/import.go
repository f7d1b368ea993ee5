package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync/media"
)

// Imported is the outcome of one imported bundle file.
type Imported struct {
	File     string // bundle file name
	Device   string // "<site>/<name>" from the bag's origin
	Accepted bool
	Reply    string // path of the receipt or rejection written
	Err      error  // *RejectedError when refused
}

// ImportDir takes the bundle files (*.tar) of a folder brought on
// removable media (the layout of package sync/media) through Receive, in
// file name order (bundle.FileName sorts a device's bundles by checkpoint
// size), as the device named by each bag's origin. Answers go to
// DIR/receipts/<file>.receipt.json for accepted bundles and
// <file>.rejection.json for refused ones, written atomically. It stops at
// the first failure that is not a refusal. A receipts folder or a *.tar
// that is a symbolic link is refused (*media.SymlinkError) before anything
// is taken; the medium is read by media's rules for hostile input.
func (a *Archive) ImportDir(ctx context.Context, dir string) ([]Imported, error) {
	names, err := media.BundleFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	if err := media.CheckReplies(dir); err != nil {
		return nil, fmt.Errorf("archive: import: %w", err)
	}
	// The receipts folder is made with the first answer: an import that
	// fails before one (or has no bundle) leaves the medium as it was.
	out := ""
	prepare := func() (string, error) {
		if out == "" {
			o, err := media.PrepareReplies(dir)
			if err != nil {
				return "", fmt.Errorf("archive: import: %w", err)
			}
			out = o
		}
		return out, nil
	}
	var res []Imported
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		im, err := a.importFile(ctx, filepath.Join(dir, name), prepare)
		if err != nil {
			return res, err
		}
		res = append(res, im)
	}
	return res, nil
}

func (a *Archive) importFile(ctx context.Context, path string, prepare func() (string, error)) (Imported, error) {
	name := filepath.Base(path)
	im := Imported{File: name, Device: "import/unknown"}
	lim := a.opts.Limits
	raw, err := media.ReadBundle(path, lim.Total+int64(lim.Files+2)*1536+1024+1)
	if err != nil {
		return im, fmt.Errorf("archive: import: %w", err)
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
	case errors.As(err, &rj):
		im.Err = err
	default:
		return im, err
	}
	out, err := prepare()
	if err != nil {
		return im, err
	}
	if im.Reply, err = media.WriteReply(out, name, im.Accepted, reply); err != nil {
		return im, err
	}
	return im, nil
}
