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
	// Duplicate: accepted, and held by the archive before this import
	// (the stored receipt answered it again).
	Duplicate bool
	Reply     string // path of the receipt or rejection written
	Err       error  // *RejectedError when refused
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
	raw, err := media.ReadBundle(path, ImportReadLimit(a.opts.Limits))
	if err != nil {
		return Imported{File: name, Device: "import/unknown"}, fmt.Errorf("archive: import: %w", err)
	}
	im, reply, err := a.importBytes(ctx, name, raw)
	if err != nil {
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

// ImportReadLimit is how much of a bundle file an import reads (from a
// medium, or from a request in ImportRequestDir): a longer file is cut
// there, for the bundle reader to refuse (CheckRead).
func ImportReadLimit(lim bundle.Limits) int64 {
	return lim.Total + int64(lim.Files+2)*1536 + 1024 + 1
}

// importBytes takes the bytes of the bundle file name through Receive as
// the device its bag's origin names and returns the outcome with the
// signed reply (receipt or rejection). Its error is a failure to process
// (no reply: import it again later), never a refusal.
func (a *Archive) importBytes(ctx context.Context, name string, raw []byte) (Imported, []byte, error) {
	im := Imported{File: name, Device: "import/unknown"}
	if b, err := bundle.Read(bytes.NewReader(raw), a.opts.Limits); err == nil {
		if o, ok := bagOrigin(b.Files[bundle.PathBagInfo]); ok {
			if dev, ok := strings.CutPrefix(o, "edgeseal/"); ok && wire.CheckDevice(dev) == nil {
				im.Device = dev
			}
		}
	}
	site, dev, _ := cutDevice(im.Device)
	// Held before under this device: a redelivery, answered with the
	// stored receipt (one accepted meanwhile, e.g. over MQTT, reads as
	// accepted).
	h := wire.HashBytes(raw)
	if acc, ok, err := a.wasAccepted(ctx, h.Sum()); err == nil && ok && acc.device == im.Device {
		im.Duplicate = true
	}
	reply, err := a.AdmitHashed(ctx, site, dev, h).Wait(ctx) // Receive
	var rj *RejectedError
	switch {
	case err == nil:
		im.Accepted = true
	case errors.As(err, &rj):
		im.Err, im.Duplicate = err, false
	default:
		return im, nil, err
	}
	return im, reply, nil
}
