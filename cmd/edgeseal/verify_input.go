package main

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
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
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), media.BundleSuffix) {
				continue
			}
			path := filepath.Join(p, e.Name())
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
