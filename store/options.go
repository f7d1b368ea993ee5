package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configure Open.
type Options struct {
	// Dir holds the Badger files; created if missing. Required.
	Dir string
	// EncryptionKey, when set, must be 32 bytes (AES-256); the journal is
	// encrypted at rest with it (values sealed, content-bearing keys named
	// by HMAC; crypt.go) and cannot be opened without it. A journal
	// created without a key must be opened without one.
	EncryptionKey []byte
	// Logger receives the journal's and Badger's warnings. nil: discard.
	Logger *slog.Logger
	// MaxBatch is the most entries one group commit takes. Default 256.
	MaxBatch int
	// MaxQueue bounds the entries waiting for the sequencer; beyond it
	// Append returns *BusyError. Default 4096.
	MaxQueue int
	// MemTableSize is Badger's memtable size; it also bounds one commit to
	// 15% of it. Default 4 MiB (small device).
	MemTableSize int64
	// MinFreeBytes is the free space Append keeps on Dir's filesystem: a
	// call that would leave less fails fast with *SpaceError instead of
	// letting Badger hit a full disk (where it dies of SIGBUS on its
	// memory-mapped files). 0 takes DefaultMinFreeBytes; negative turns
	// the check off. Linux only.
	MinFreeBytes int64
	// ResidentBytes bounds how much of the journal's memory-mapped files
	// stays resident in this process: after about this many bytes have
	// been committed, a background pass hands their pages back to the
	// kernel (see trimResident). 0 takes 8 MiB; negative turns it off.
	ResidentBytes int64
}

const (
	defaultMaxBatch     = 128
	defaultMaxQueue     = 4096
	defaultMemTableSize = 2 << 20
	defaultResident     = 8 << 20
	valueThreshold      = 256 // larger values go to the value log
)

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return fmt.Errorf("store: open: Options.Dir is empty")
	}
	if n := len(o.EncryptionKey); n != 0 && n != 32 {
		return fmt.Errorf("store: open: encryption key is %d bytes, want 32", n)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = defaultMaxQueue
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.MemTableSize < 1<<20 {
		o.MemTableSize = 1 << 20
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.ResidentBytes == 0 {
		o.ResidentBytes = defaultResident
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// badgerOptions returns Badger tuned for a small device: small memtables,
// no block or index cache (tables are unencrypted and uncompressed, read
// from their mappings), two compactors, synced writes, no conflict detection (the
// sequencer is the only writer of the log keys), Badger's logger routed
// into slog at warn level. BenchmarkBadgerBaseline uses the same options.
//
// Tables are 2 MiB (levels from 8 MiB): upstream Badger allocated a
// fixed 3 MB index builder for every table it builds, so 512 KiB tables
// spent more on building indexes than on the data under API load (batch
// ingest 6-7k records/s against 12k with 2 MiB tables, same run). The
// patched copy sizes that builder to the table (third_party/README.md);
// each table build still takes an allocator of twice the table size.
//
// Checksums are verified per block as Badger reads it (OnBlockRead), never
// table by table at open: OnTableRead read and checksummed every block of
// every table on each Open (1M records: ~230 MB, over a second on this
// machine, linear in the journal), which is the rescan Open must not do.
// A rotten block is still never served: the read fails and the journal
// reports a *CorruptError for the records it holds (Record, Records,
// Scrub; see TestBitRotFoundOnReadNotAtOpen) instead of refusing to open.
// Open's remaining cost is one index read per table and the replay of
// at most a few memtable write-ahead logs (each bounded by MemTableSize)
// after a crash.
func badgerOptions(o Options, lg *badgerLogger) badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithLogger(lg).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(64 << 20).
		WithCompression(options.None).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithNumVersionsToKeep(1)
	return bo
}

// badgerLogger routes Badger's logger into slog: errors and warnings are
// kept, info and debug are dropped. Badger swallows the error of its final
// value-log sync and only logs it; the logger notices and the sequencer
// then refuses to acknowledge the batch (see Journal.commit).
//
// Badger's background writes report their failures only here: a memtable
// flush that cannot write or msync its table logs and retries forever
// while commits stall behind it; one whose MANIFEST change fails is not
// retried and blocks writes (third_party/README.md). An error line about a sync, a flush or a
// write request, and a failed compaction (Warningf), therefore fail the
// journal (fail, set by Open), as a failed commit does: the daemon exits
// and reopens from the disk.
type badgerLogger struct {
	l        *slog.Logger
	syncErrs atomic.Int64
	fail     atomic.Pointer[func(error)]
}

func (b *badgerLogger) Errorf(f string, a ...any) {
	lf := strings.ToLower(f)
	if strings.Contains(lf, "sync") {
		b.syncErrs.Add(1)
	}
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	b.l.Error("badger: " + msg)
	if strings.Contains(lf, "sync") || strings.Contains(lf, "flush") || strings.Contains(lf, "writerequests") {
		if fn := b.fail.Load(); fn != nil {
			(*fn)(errors.New("badger: " + msg))
		}
	}
}

// Warningf logs Badger's warnings; a failed compaction is a failed write
// (Badger applies a manifest change in memory before it writes it, so a
// later manifest rewrite could persist a change whose tables are gone):
// it fails the journal too.
func (b *badgerLogger) Warningf(f string, a ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	if b.l.Enabled(context.Background(), slog.LevelWarn) {
		b.l.Warn("badger: " + msg)
	}
	if strings.Contains(strings.ToLower(f), "compact failed") {
		if fn := b.fail.Load(); fn != nil {
			(*fn)(errors.New("badger: " + msg))
		}
	}
}

func (b *badgerLogger) Infof(string, ...any)  {}
func (b *badgerLogger) Debugf(string, ...any) {}
