package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync/media"
)

// loadedBundle is one bundle verify was given, read once to check that it
// is a bundle and to order it; verify reads it again (one bundle in memory
// at a time).
type loadedBundle struct {
	path string
	size uint64 // the checkpoint size its seal claims
}

// loadBundles lists the bundles verify was given: files in the order given,
// a directory as its *.bundle.tar files ordered by checkpoint size (then
// name). Any unreadable input is a usage error (exit 2) before anything is
// verified.
func loadBundles(paths []string) ([]loadedBundle, error) {
	var out []loadedBundle
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, usageErr("verify: %v", err)
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				return nil, usageErr("verify: %s: not a regular file", p)
			}
			b, err := bundle.ReadFile(p)
			if err != nil {
				return nil, usageErr("verify: %v", err)
			}
			out = append(out, loadedBundle{p, checkpointSize(b)})
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, usageErr("verify: %v", err)
		}
		var dir []loadedBundle
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), media.BundleSuffix) {
				continue
			}
			path := filepath.Join(p, e.Name())
			if !e.Type().IsRegular() {
				// Said, not skipped: a folder's summary must count all of it.
				return nil, usageErr("verify: %s: not a regular file (a link or a special file in a bundle folder is refused)", path)
			}
			b, err := bundle.ReadFile(path)
			if err != nil {
				return nil, usageErr("verify: %v", err)
			}
			dir = append(dir, loadedBundle{path, checkpointSize(b)})
		}
		if len(dir) == 0 {
			return nil, usageErr("verify: no *%s in %s", media.BundleSuffix, p)
		}
		sort.SliceStable(dir, func(i, j int) bool {
			if dir[i].size != dir[j].size {
				return dir[i].size < dir[j].size
			}
			return dir[i].path < dir[j].path
		})
		out = append(out, dir...)
	}
	return out, nil
}

// checkpointSize is the size the bundle's (not yet verified) seal
// statement claims, for ordering only; one that does not parse sorts last,
// where verification names what is wrong with it.
func checkpointSize(b *bundle.Bundle) uint64 {
	size, err := claimedSize(b)
	if err != nil {
		return 1<<64 - 1
	}
	return size
}

func claimedSize(b *bundle.Bundle) (uint64, error) {
	raw, ok := b.Files[bundle.PathSeal]
	if !ok {
		return 0, errors.New("no seal")
	}
	env, err := dsse.ParseEnvelope(raw)
	if err != nil {
		return 0, err
	}
	st, err := bundle.ParseStatement(env.Payload)
	if err != nil {
		return 0, err
	}
	cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// maxPreviousSize bounds verify --previous: a state file, or a bundle tar
// within bundle.DefaultLimits (its files, and a header and padding of at
// most 2 KiB each).
var maxPreviousSize = int(bundle.DefaultLimits.Total) + bundle.DefaultLimits.Files*2048

// readRegular reads a file the user named (a link to one is followed),
// at most limit bytes, refusing anything but a regular file before it
// reads: opening a FIFO would block until a writer came.
func readRegular(path string, limit int) ([]byte, error) {
	return fsutil.ReadRegular(path, limit)
}

// checkOutputFile refuses an output path that could not be written: its
// folder missing, not a folder or not writable, or the path itself there
// but not a regular file (a folder; a FIFO would block the write).
func checkOutputFile(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a folder", dir)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}
