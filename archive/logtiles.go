package archive

import (
	"context"
	"errors"

	"github.com/edgeseal/edgeseal/archive/tlog"
)

// LogTiles returns the archive log as a read-only tlog.Source, on any
// engine: its last published signed checkpoint, the C2SP tlog-tiles hash tiles of its tree
// and its entry bundles (the canonical archivesig.ReceiptEntry and
// LogKeyEntry records). tlog.Handler serves it; only what that
// checkpoint commits to is served.
func (a *Archive) LogTiles() tlog.Source { return logSource{a.log} }

// logSource is the log as a tlog.Source (the tlog-tiles handler), following
// a reopening.
type logSource struct{ l *archiveLog }

func (s logSource) src() (tlog.Source, error) {
	src, ok := s.l.l.(tlog.Source)
	if !ok {
		return nil, errors.New("archive: the log engine serves no tiles")
	}
	return src, nil
}

func (s logSource) Checkpoint(ctx context.Context) (tlog.Checkpoint, error) {
	s.l.lmu.RLock()
	defer s.l.lmu.RUnlock()
	src, err := s.src()
	if err != nil {
		return tlog.Checkpoint{}, err
	}
	c, err := src.Checkpoint(ctx)
	if err == nil && c.Size == 0 {
		// Tessera publishes the empty tree's; the archive serves no
		// checkpoint of an empty log, on any engine (as Checkpoint).
		return tlog.Checkpoint{}, tlog.ErrNoCheckpoint
	}
	return c, err
}

func (s logSource) ReadTile(ctx context.Context, level, index uint64, w uint8) ([]byte, error) {
	s.l.lmu.RLock()
	defer s.l.lmu.RUnlock()
	src, err := s.src()
	if err != nil {
		return nil, err
	}
	return src.ReadTile(ctx, level, index, w)
}

func (s logSource) ReadEntryBundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	s.l.lmu.RLock()
	defer s.l.lmu.RUnlock()
	src, err := s.src()
	if err != nil {
		return nil, err
	}
	return src.ReadEntryBundle(ctx, index, w)
}
