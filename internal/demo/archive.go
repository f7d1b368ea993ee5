package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/broker"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// archiveProc is the archive the demo runs in process, with its embedded
// MQTT broker on a free loopback port.
type archiveProc struct {
	a        *archive.Archive
	brk      *broker.Broker
	keyFile  string
	api      string // HOST:PORT of the read API and its dashboard
	auditPwd string // the password of the dashboard's AuditorUser
	stop     func() error
}

// writeArchiveConfig writes the demo archive's config, its embedded
// broker listening on listen, TLS only with client certificates (tf), and
// its read API with the dashboard on apiListen (loopback, plain HTTP).
func writeArchiveConfig(path, dataDir, listen, apiListen string, tf *tlsFiles) error {
	text := fmt.Sprintf(`# Written by 'edgeseal demo'.
data_dir: %[1]s
key_file: %[1]s/archive.key
name: edgeseal-archive
mqtt:
  embedded:
    listen: %[2]s
    tls:
      ca_file: %[3]s
      cert_file: %[4]s
      key_file: %[5]s
  client_id: edgeseal-archive
api:
  listen: %[6]s
log:
  format: text
  level: info
`, dataDir, listen, tf.CA, tf.ServerCert, tf.ServerKey, apiListen)
	return fsutil.WriteFileAtomic(path, []byte(text), 0o600)
}

// startArchive runs the archive daemon (archived.Run) with its config in
// dir/archive and returns once it serves.
func startArchive(ctx context.Context, o Options, dir string, tf *tlsFiles, log *slog.Logger) (*archiveProc, error) {
	adir, err := filepath.Abs(filepath.Join(dir, "archive"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return nil, err
	}
	auditPwd, err := auditorAccount(adir, dir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(adir, "archive.yaml")
	if err := writeArchiveConfig(cfgPath, adir, "127.0.0.1:0", "127.0.0.1:0", tf); err != nil {
		return nil, err
	}
	cfg, err := aconfig.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	ready := make(chan *archiveProc, 1)
	done := make(chan error, 1)
	var apiAddr string // set by APIReady, which runs before Ready
	go func() {
		done <- archived.Run(actx, cfg, archived.Options{Logger: log,
			APIReady: func(_ *api.Server, addr net.Addr) { apiAddr = addr.String() },
			Ready: func(a *archive.Archive, b *broker.Broker) {
				ready <- &archiveProc{a: a, brk: b, keyFile: cfg.KeyFile, api: apiAddr, auditPwd: auditPwd}
			}})
	}()
	select {
	case da := <-ready:
		// The agent's config names the port the broker took: keep it in
		// the archive's config too, so that the pair can be run again, and
		// the dashboard's too, so that its address stays the one printed.
		if err := writeArchiveConfig(cfgPath, adir, da.brk.Addr(), da.api, tf); err != nil {
			cancel()
			<-done
			return nil, err
		}
		var once gosync.Once
		var stopErr error
		da.stop = func() error { // idempotent
			once.Do(func() { cancel(); stopErr = <-done })
			return stopErr
		}
		return da, nil
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("demo: archive did not start: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		return nil, errors.New("demo: archive not ready within 30s")
	}
}

// enroll writes the device's trust file from its TPM and has the archive
// enroll and approve it, as an operator would. The keys are bound to a
// PCR-policy key the demo makes in dir (pcr-key, pcr-key.pub), which then
// authorizes the PCR values at enrollment.
func (da *archiveProc) enroll(ctx context.Context, o Options, site, device, tpmSpec, tpmState, dir string) (*trustfile.Trust, error) {
	if _, err := agent.WritePCRPolicyKey(filepath.Join(dir, "pcr-key")); err != nil {
		return nil, err
	}
	opKey, err := agent.ReadPCRPolicyPrivate(filepath.Join(dir, "pcr-key"))
	if err != nil {
		return nil, err
	}
	name := site + "/" + device
	t, err := tpm.Open(ctx, tpmSpec, tpm.Options{StateDir: tpmState, Logger: slog.New(slog.DiscardHandler), Simulator: o.Simulator,
		PCRPolicy: &tpm.PCRPolicy{Key: &opKey.PublicKey, Ref: trustfile.PCRPolicyRef(name)}, Create: true})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	trust, err := trustfile.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return nil, err
	}
	pcrs, values := trust.PCRs()
	auth, err := trustfile.SignPCRAuthorization(opKey, name, pcrs, values, time.Now())
	if err != nil {
		return nil, err
	}
	araw, err := auth.Marshal()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "pcr-authorization.json"), araw, 0o644); err != nil {
		return nil, err
	}
	if _, err := agent.StorePCRAuthorization(tpmState, name, araw); err != nil {
		return nil, err
	}
	if err := wrapRecovery(ctx, t, tpmState, name, filepath.Join(dir, RecoveryKeyFile)); err != nil {
		return nil, err
	}
	if err := t.Close(); err != nil {
		return nil, err
	}
	raw, err := trust.Marshal()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "DEVICE.json"), raw, 0o644); err != nil {
		return nil, err
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		return nil, err
	}
	if _, err := da.a.Devices().Enroll(ctx, req); err != nil {
		return nil, err
	}
	if _, err := da.a.Devices().Approve(ctx, trust.DeviceName(), trust.KeyID, "demo-operator"); err != nil {
		return nil, err
	}
	return trust, nil
}

// delivered is one bundle the archive stored and receipted.
type delivered struct {
	outbox   string
	path     string
	logIndex uint64
}

// collect reads the receipts the agent journaled, verifies each (the
// archive's signature, and the inclusion of the bundle's entry in the
// archive log), fetches each bundle from the archive's write-once store and
// writes both into dir.
func (da *archiveProc) collect(ctx context.Context, o Options, cfg agentPaths, dir string) ([]delivered, error) {
	t, err := tpm.Open(ctx, cfg.tpm, tpm.Options{StateDir: cfg.tpmState, Logger: slog.New(slog.DiscardHandler), Simulator: o.Simulator})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if _, err := agent.LoadPCRAuthorization(ctx, cfg.tpmState, cfg.device, t); err != nil {
		return nil, err
	}
	key, err := t.DataKey(ctx)
	if err != nil {
		return nil, err
	}
	j, err := store.Open(ctx, store.Options{Dir: cfg.journal, EncryptionKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	receipts, err := agent.ReadReceipts(ctx, j)
	if err != nil {
		return nil, err
	}
	left := 0
	if err := j.Outbox(ctx, func(string, []byte) error { left++; return nil }); err != nil {
		return nil, err
	}
	if left > 0 {
		return nil, fmt.Errorf("demo: %d bundle(s) still in the agent's outbox", left)
	}
	for _, sub := range []string{"bundles", "receipts"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	// The receipts verify against the key the agent was given, following
	// the archive's key rotations they carry (as the agent does).
	root, err := agentd.ReadArchiveKey(da.keyFile + ".pub")
	if err != nil {
		return nil, err
	}
	keys := archivesig.NewArchiveKeys(archive.DefaultName, root)
	var out []delivered
	for id, raw := range receipts {
		r, _, err := keys.VerifyReceipt(raw, time.Now())
		if err != nil {
			return nil, fmt.Errorf("demo: receipt for %s: %w", id, err)
		}
		root, err := r.ArchiveRoot()
		if err != nil {
			return nil, err
		}
		entry, err := r.Entry().Marshal()
		if err != nil {
			return nil, err
		}
		proof := make([][32]byte, len(r.InclusionProof))
		for i, h := range r.InclusionProof {
			copy(proof[i][:], h)
		}
		if err := merkle.VerifyInclusion(proof, r.LogIndex, root.Size, root.Root, merkle.LeafHash(entry)); err != nil {
			return nil, fmt.Errorf("demo: receipt for %s: inclusion: %w", id, err)
		}
		d, err := wire.ParseHash(r.BundleDigest)
		if err != nil {
			return nil, err
		}
		data, err := da.a.Objects().Get(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("demo: bundle %s from the archive: %w", r.BundleDigest, err)
		}
		p := filepath.Join(dir, "bundles", id+".bundle.tar")
		if err := fsutil.WriteFileAtomic(p, data, 0o644); err != nil {
			return nil, err
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, "receipts", id+".receipt.json"), raw, 0o644); err != nil {
			return nil, err
		}
		out = append(out, delivered{outbox: id, path: p, logIndex: r.LogIndex})
	}
	return out, nil
}

// agentPaths is where the demo agent keeps its TPM state and journal.
type agentPaths struct{ tpm, tpmState, journal, device string }

// wrapRecovery makes the demo's recovery key pair keyFile, keyFile.pub
// (once) and wraps the data key to it, as `tpm enroll --recovery-key` does.
func wrapRecovery(ctx context.Context, t *tpm.TPM, state, device, keyFile string) error {
	if _, err := os.Stat(keyFile + ".pub"); errors.Is(err, os.ErrNotExist) {
		if _, err := agent.WriteRecoveryKey(keyFile); err != nil {
			return err
		}
	}
	pub, err := agent.ReadRecoveryPublic(keyFile + ".pub")
	if err != nil {
		return err
	}
	return agent.WrapDataKey(ctx, t, state, device, pub)
}
