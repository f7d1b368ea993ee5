package archive

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// ReadLog calls fn with each entry of the archive log of a stopped
// archive, in order, on the engine the archive runs on: opts.Dir,
// opts.Name, opts.Signer or opts.Key (the archive's current key: the log's
// checkpoints are verified with it and the keys it retired, as Open
// does), opts.LogEngine and opts.LogDSN as given to Open; the rest of
// opts is not used. It opens the log alone: the index, the objects, the
// chain state and the log keys are neither read nor written, nothing is
// appended, and a log the archive does not have is an error (never
// created). It reads the entries of the log's size at opening.
func ReadLog(ctx context.Context, opts Options, fn func(index uint64, rec []byte) error) (err error) {
	if opts.Signer == nil {
		if len(opts.Key) != ed25519.PrivateKeySize {
			return errors.New("archive: read log: no signer")
		}
		opts.Signer = opts.Key
	}
	opts.Name = cmp.Or(opts.Name, DefaultName)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LogEngine, err = ResolveLogEngine(opts.Dir, opts.LogEngine, nil); err != nil {
		return fmt.Errorf("archive: read log: %w", err)
	}
	switch opts.LogEngine {
	case LogEngineJournal, LogEnginePOSIX:
		sub := map[string]string{LogEngineJournal: JournalLogDir, LogEnginePOSIX: POSIXLogDir}[opts.LogEngine]
		if _, err := os.Lstat(filepath.Join(opts.Dir, sub)); err != nil {
			return fmt.Errorf("archive: read log: %w", err)
		}
	}
	chain, err := loadKeyChain(opts.Dir, opts.Name, opts.Signer)
	if err != nil {
		return err
	}
	st, err := newSignerState(opts.Name, opts.Signer, chain)
	if err != nil {
		return err
	}
	if st.retired, err = retiredKeys(opts.Dir, chain); err != nil {
		return err
	}
	open, err := logOpener(opts, opts.Logger.With("journal", "log"))
	if err != nil {
		return err
	}
	l, err := open(ctx, st, false)
	if err != nil {
		return fmt.Errorf("archive: read log: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logCloseWait)
		defer cancel()
		err = errors.Join(err, l.Close(cctx))
	}()
	n, err := l.Size(ctx)
	if err != nil {
		return fmt.Errorf("archive: read log: %w", err)
	}
	return l.Entries(ctx, 0, n, fn)
}
