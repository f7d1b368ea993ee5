package agentd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/spool"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// MemTable is the journal's memtable size in the daemon. Records and
// payloads go to Badger's value log, so the memtable holds keys, value
// pointers and hashes: one commit (15% of it, ~470 KB and ~4,400 keys of
// those) takes a batch of about 1,250 exports with client ids (1000-line
// batches commit at once; at 2 MiB they split at 842); larger ones are
// split into consecutive commits. The active memtable and the one being
// flushed are Go allocations: at 4 MiB they held 8-12 MiB of the live
// heap under batch load.
const MemTable = 3 << 20

// MemoryLimit is the soft memory limit the daemon's process should set
// when GOMEMLIMIT is not (the same as the systemd unit's GOMEMLIMIT):
// Badger's compaction buffers are ordinary Go allocations, and without a
// limit the heap doubles past them. The limit caps what the Go runtime
// holds, and under load the heap grows to it: the agent's peak RSS is
// about the limit plus its executable's resident pages (about 24 MiB),
// the TPM simulator's libcrypto (4 MiB) and Badger's mapped files, and
// more when the live heap comes near the limit (the limit is soft). Under
// 1000-line batches the live heap peaks at 30-45 MiB: Badger's table
// builders (12 MiB at the peak), its memtables (MemTable), the bundle
// being sealed and the seal cache (agent.Options.SealMaxBytes each), two
// batches' lines. Measured on one loaded machine, 1000-line batches: at
// 64 MiB a peak RSS of 99-106 MiB; at 56 MiB with 4 MiB memtables and a
// seal cache of two bundles 95-97 MiB and 15-20% more CPU a record (the
// collector running near the limit); at 56 MiB with MemTable and a seal
// cache of one bundle 85-90 MiB, for 0-19% (about 8% on average) more CPU
// a record than at 64 MiB; 100-line batches and single exports showed no
// difference.
const MemoryLimit = 56 << 20

// Resident is how many committed bytes the journal lets its mapped files
// keep resident before handing the pages back (store.Options). At 2 MiB
// the compactions' tables stayed resident long enough that the agent's
// peak RSS under 1000-line batches reached 120-131 MiB (five runs); at
// 512 KiB it was 109-120 MiB, at the same CPU per record.
const Resident = 512 << 10

// ErrJournalFailed is Run's error after a failed journal commit, should
// exitProcess return.
var ErrJournalFailed = errors.New("journal write failed; stopped for a restart (see the log)")

// exitProcess ends the process after a journal failure (a variable, so
// that a test can watch the exit instead).
var exitProcess = os.Exit

// ShutdownTimeout bounds the drain of in-flight requests on stop.
const ShutdownTimeout = 20 * time.Second

// Options are what Run takes besides the config.
type Options struct {
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// Simulator opens the in-process TPM simulator for a "simulator:DIR"
	// spec (tpm.Options.Simulator); nil when it is not linked in.
	Simulator agent.SimulatorOpener
}

// Run runs the agent daemon of cfg until ctx is done: it listens first
// (/healthz answers, /readyz says 503 while opening), opens the TPM, the
// data key, the journal, the policy and the core, serves the API and seals
// in the background. On stop it drains in-flight requests (new ones are
// answered 503 not_ready with Retry-After), seals what is pending, closes
// the journal and the TPM, and closes its listeners last. An sdnotify.Notifier in
// ctx (sdnotify.NewContext) hears READY, STOPPING and the watchdog.
// Errors that stop a device whose TPM changed carry the way out
// (StartHint).
func Run(ctx context.Context, cfg *config.Config, o Options) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	mets := metrics.NewAgent()
	// reload rereads the policy once the core is open; SIGHUP is taken
	// from the start (not the default action, which ends the process) and
	// ignored, with a log line, until then.
	var reload atomic.Pointer[func(ctx context.Context, via, who string) (*agent.PolicyReload, error)]
	stopHUP := watchSIGHUP(func() {
		f := reload.Load()
		if f == nil {
			log.Warn("SIGHUP before the agent is ready: the policy is read when it is")
			return
		}
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = (*f)(rctx, "sighup", "") // a refusal is logged and raises the alarm
	})
	defer stopHUP()
	srv := api.New(api.Options{
		Principals: cfg.Principals, MaxBody: int64(cfg.API.MaxBody), MaxInflight: int64(cfg.API.MaxInflight),
		MaxBatchLines: cfg.API.MaxBatchLines, Logger: log.With("component", "api"),
		Unjournaled: mets.UnauthenticatedUnjournaled,
		ReloadPolicy: func(ctx context.Context, who string) (*agent.PolicyReload, error) {
			f := reload.Load() // set before SetCore, which the API waits for
			if f == nil {
				return nil, errStopping
			}
			return (*f)(ctx, "api", who)
		},
	})
	// Listen first: /healthz answers and /readyz says 503 while opening.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	if cfg.API.Socket != "" {
		gid, err := cfg.API.SocketGID()
		if err != nil {
			return fmt.Errorf("agent: api.socket_group: %w", err)
		}
		ln, err := api.ListenUnixGroup(ctx, cfg.API.Socket, cfg.API.SocketMode, gid)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	var tcpAddr string
	if cfg.API.TCP != "" {
		ln, err := api.ListenTLS(ctx, cfg.API.TCP, cfg.API.TLSCert, cfg.API.TLSKey)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		tcpAddr = ln.Addr().String()
	}
	var serving gosync.WaitGroup
	serveErr := make(chan error, len(lns))
	var serversUp atomic.Int32 // for the watchdog: every listener still served
	nListeners := int32(len(lns))
	for _, ln := range lns {
		serversUp.Add(1)
		serving.Go(func() {
			defer serversUp.Add(-1)
			if err := srv.Serve(ln); err != nil {
				serveErr <- err
			}
		})
	}
	stopServer := func() {
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("shutdown: requests still in flight were cut", "err", err)
		}
		serving.Wait()
	}
	defer func() {
		if lns != nil { // not yet stopped in order
			stopServer()
		}
	}()

	if sp, err := tpm.ParseSpec(cfg.TPM); err == nil && sp.Kind == tpm.KindSimulator {
		log.Warn("TPM is the in-process simulator: INSECURE, for tests and demos only")
	}
	t, err := agent.OpenTPM(ctx, cfg, o.Simulator, log)
	if err != nil {
		return StartHint(err)
	}
	defer func() {
		if cerr := t.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	key, err := t.DataKey(ctx)
	if err != nil {
		return StartHint(fmt.Errorf("agent: data key: %w", err))
	}
	j, err := agent.OpenJournal(ctx, cfg, key, agent.JournalOptions{MemTableSize: MemTable, ResidentBytes: Resident, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	polSrc, err := agent.OpenPolicySource(cfg, log)
	if err != nil {
		return err
	}
	pol, signedPol, err := polSrc.Load()
	if err != nil {
		return err
	}
	var pub *sync.Publisher // nil: sync is off
	core, err := agent.Open(ctx, agent.Options{
		Site: cfg.Site, Device: cfg.Device, SealEvery: cfg.Seal.Every, SealInterval: cfg.Seal.Interval, SealMaxBytes: int64(cfg.Seal.MaxBundle),
		Logger: log.With("component", "core"), Policy: pol, OutboxQuota: int64(cfg.Sync.OutboxQuota),
		Observer: mets, RotateEvery: cfg.Seal.RotateEvery, PCRAuthDir: cfg.TPMStateDir, StateDir: cfg.DataDir,
		AfterSeal: func() {
			if pub != nil {
				pub.Wake()
			}
		},
	}, j, t)
	if err != nil {
		return err
	}
	// Before any ingest: an agent configured to encrypt never takes an
	// export it would send in plaintext.
	if err := UseContentKey(cfg, core, time.Now(), log); err != nil {
		return err
	}
	if err := polSrc.Start(ctx, core, signedPol, log); err != nil {
		return err
	}
	reloadFn := func(ctx context.Context, via, who string) (*agent.PolicyReload, error) {
		// A rotated content key is taken on reload too: the file is read
		// again and a newer announcement (a higher seq) that verifies is
		// used from now on; one that does not is logged, the key in use
		// stays.
		if err := UseContentKey(cfg, core, time.Now(), log); err != nil {
			log.Error("content key not reloaded; the key in use stays", "err", err)
		}
		return polSrc.Reload(ctx, core, via, who)
	}
	reload.Store(&reloadFn)
	defer reload.Store(nil) // before the journal closes: a late SIGHUP is ignored
	if cfg.Sync.Broker != "" {
		if pub, err = newPublisher(cfg, core, log.With("component", "sync")); err != nil {
			return err
		}
		syncCtx, stopSync := context.WithCancel(context.Background())
		var syncer gosync.WaitGroup
		syncer.Go(func() {
			if err := pub.Start(syncCtx); err != nil && syncCtx.Err() == nil {
				log.Error("sync stopped", "err", err)
			}
		})
		syncer.Go(func() {
			reportOutbox(syncCtx, cfg.Site, cfg.Device, core.OutboxState, pub, OutboxReportEvery, time.Now, log.With("component", "sync"))
		})
		// Deferred before the sealer's stop, so it runs after it: the
		// final seal's bundle still gets its chance to go out.
		defer func() { stopSync(); syncer.Wait() }()
	}
	sealCtx, stopSealer := context.WithCancel(context.Background())
	var sealer gosync.WaitGroup
	var sealing atomic.Bool // for the watchdog: the sealer loop runs
	sealing.Store(true)
	sealer.Go(func() { defer sealing.Store(false); core.Start(sealCtx) })
	defer func() { stopSealer(); sealer.Wait() }()

	if cfg.Spool.Dir != "" {
		w, err := spool.New(spool.Options{
			Dir: cfg.Spool.Dir, Poll: cfg.Spool.Poll, Principal: cfg.Principals.Find(cfg.Spool.Principal),
			Ingester: spool.CoreIngester(core), MaxSize: int64(cfg.API.MaxBody), Logger: log.With("component", "spool"),
			Mode: cfg.Spool.Mode, Group: cfg.Spool.Group, KeepDonePayloads: false,
		})
		if err != nil {
			return err
		}
		spoolCtx, stopSpool := context.WithCancel(context.Background())
		var spooler gosync.WaitGroup
		spooler.Go(func() { w.Start(spoolCtx) })
		defer func() { stopSpool(); spooler.Wait() }()
	}

	if keep := cfg.Retention.LocalPayloads; keep > 0 {
		retCtx, stopRet := context.WithCancel(context.Background())
		var retainer gosync.WaitGroup
		retainer.Go(func() { runLocalRetention(retCtx, core, keep, cfg.Spool.Dir, log.With("component", "retention")) })
		defer func() { stopRet(); retainer.Wait() }()
	}

	if cfg.Metrics.Listen != "" {
		stop, err := serveMetrics(ctx, cfg.Metrics.Listen, mets, j, core, pub, log.With("component", "metrics"))
		if err != nil {
			return err
		}
		defer stop()
	}

	srv.SetCore(core)
	log.Info("ready", "socket", cfg.API.Socket, "tcp", tcpAddr, "journal", j.Size(), "policy", pol.Digest(),
		"took", time.Since(start).Round(time.Millisecond))
	notify := sdnotify.FromContext(ctx)
	if err := notify.Notify(sdnotify.Ready); err != nil {
		log.Warn("sd_notify READY", "err", err)
	}
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	var watchdog gosync.WaitGroup
	watchdog.Go(func() {
		notify.Start(wdCtx, func() bool { return sealing.Load() && serversUp.Load() == nListeners })
	})
	defer func() { stopWatchdog(); watchdog.Wait() }()

	select {
	case <-ctx.Done():
		log.Info("stopping: draining requests")
	case err = <-serveErr:
		log.Error("API listener failed; stopping", "err", err)
	case <-j.Failed():
		// A journal commit failed: its exports were answered 5xx, never
		// 201, and the journal refuses reads and writes. The agent never
		// retries the sync (a failed fsync or msync may have dropped the
		// pages it could not write, so a retry could "succeed" without
		// them): it raises the alarm and exits with status 1 for systemd
		// to restart it; the new process reopens the journal from what
		// reached the disk. See docs/durability.md.
		log.Error("ALARM journal write failed: durability lost; exiting for a restart", "alarm", "journal.failed", "err", j.Err())
		// At once: Badger's background work (flushes, compactions)
		// would go on writing to a disk that fails while requests
		// drained; requests in flight can only fail anyway, and their
		// clients retry. The deferred closes do not run.
		exitProcess(1)
		err = fmt.Errorf("agent: %w", ErrJournalFailed) // when exitProcess returns
	}
	if err := notify.Notify(sdnotify.Stopping); err != nil {
		log.Warn("sd_notify STOPPING", "err", err)
	}
	// Drain rather than close: the calls in the core finish, and new ones
	// hear 503 not_ready with Retry-After while the last seal runs and
	// the journal and the TPM close; the listeners close last (deferred),
	// so a restart leaves clients without an answer only between this
	// process's exit and the next one's listen.
	dctx, cancelDrain := context.WithTimeout(context.Background(), ShutdownTimeout)
	if err := srv.Drain(dctx); err != nil {
		log.Warn("shutdown: requests still in flight after the drain timeout", "err", err)
	}
	cancelDrain()
	stopSealer()
	sealer.Wait() // seals what is pending
	log.Info("stopped", "journal", j.Size())
	return err
}
