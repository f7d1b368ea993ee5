package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// tailRecords is how many of the journal's last records doctor verifies.
const tailRecords = 1000

// Disk thresholds of doctor: below failDisk free the journal soon refuses
// appends (store.DefaultMinFreeBytes is kept free); below warnDisk or
// warnDiskPct it is time to act.
const (
	failDisk    = 2 * store.DefaultMinFreeBytes
	warnDisk    = 1 << 30
	warnDiskPct = 10
)

const reenrollFix = "if the change is expected (firmware, bootloader or kernel update), re-enroll: edgeseal tpm enroll ... --out DEVICE.json, then approve the new key at the archive (edgeseal archive enroll-file, devices approve); otherwise investigate the boot chain"

// checkTPM opens the TPM with the agent's settings without creating keys,
// unseals the data key, signs a test digest, compares the PCRs with the
// values the key was enrolled with (and with --trust), then hands the
// data key to next (nil: none) before closing the TPM.
func (d *Doctor) checkTPM(next func(key []byte)) {
	cfg := d.cfg
	has, err := tpm.HasKeys(cfg.TPMStateDir)
	switch {
	case err != nil:
		d.Report(LevelFail, "tpm", fmt.Sprintf("key state in %s: %v", cfg.TPMStateDir, err), "restore "+cfg.TPMStateDir+" from backup or re-enroll")
		return
	case !has:
		d.Report(LevelFail, "tpm", "no TPM keys in "+cfg.TPMStateDir+": this device is not enrolled, or the path is wrong",
			"edgeseal tpm enroll --tpm "+cfg.TPM+" --state "+cfg.TPMStateDir+" --site "+cfg.Site+" --device "+cfg.Device+" --out DEVICE.json")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 2*d.timeout)
	defer cancel()
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Simulator: d.sim})
	if err != nil {
		d.Report(LevelFail, "tpm", fmt.Sprintf("open %s: %v", cfg.TPM, err), tpmOpenFix(err, cfg.TPMStateDir))
		return
	}
	defer t.Close()
	id := t.Identity()
	if t.Simulated() {
		d.Report(LevelWarn, "tpm", "reachable, but it is the in-process SIMULATOR: seals prove nothing", "set tpm: device:/dev/tpmrm0 in production")
	} else {
		d.Report(LevelOK, "tpm", fmt.Sprintf("reachable (%s), signing key %s", cfg.TPM, id.KeyID), "")
	}
	if id.PCRPolicyKey != nil {
		d.checkPCRAuthorization(ctx, t)
	}
	d.checkPCRs(ctx, t, id)
	digest := sha256.Sum256([]byte("edgeseal doctor"))
	if _, err := t.Sign(ctx, digest[:]); err != nil {
		d.Report(LevelFail, "keys", "the signing key does not sign: "+err.Error(), reenrollFix)
	}
	key, err := t.DataKey(ctx)
	if err != nil {
		d.Report(LevelFail, "keys", "the data key does not unseal: "+err.Error(), reenrollFix)
		return
	}
	d.Report(LevelOK, "keys", "signing key signs, data key unseals", "")
	d.checkRecoveryWrap()
	if next != nil {
		next(key)
	}
}

// checkPCRs compares the current PCRs with the values the signing key is
// bound to and, with --trust, with the enrolled DEVICE.json.
func (d *Doctor) checkPCRs(ctx context.Context, t *tpm.TPM, id tpm.Identity) {
	cur, err := t.ReadPCRs(ctx)
	if err != nil {
		d.Report(LevelFail, "pcrs", "read: "+err.Error(), "check the TPM")
		return
	}
	var moved []int
	want := id.PCRValues
	if id.PCRPolicyKey != nil {
		want = t.Authorized()
	}
	for _, p := range id.PCRs {
		if string(cur[p]) != string(want[p]) {
			moved = append(moved, p)
		}
	}
	switch {
	case len(moved) > 0 && id.PCRPolicyKey != nil:
		d.Report(LevelFail, "pcrs", fmt.Sprintf("PCR %v differ from the authorized values: the keys do not work until the operator authorizes the current ones", moved), authorizeFix)
	case len(moved) > 0:
		d.Report(LevelFail, "pcrs", fmt.Sprintf("PCR %v changed since enrollment: the key no longer signs", moved), reenrollFix)
	default:
		d.Report(LevelOK, "pcrs", fmt.Sprintf("PCRs %v match the values the key is bound to", id.PCRs), "")
	}
	if d.trust == "" {
		return
	}
	raw, err := os.ReadFile(d.trust)
	if err != nil {
		d.Report(LevelFail, "trust", err.Error(), "give the device's DEVICE.json with --trust")
		return
	}
	tr, err := trustfile.ParseTrust(raw)
	if err != nil {
		d.Report(LevelFail, "trust", d.trust+": "+err.Error(), "give the DEVICE.json `edgeseal tpm enroll` wrote")
		return
	}
	pcrs, golden := tr.PCRs()
	var differ []int
	for _, p := range pcrs {
		if string(cur[p]) != string(golden[p]) {
			differ = append(differ, p)
		}
	}
	switch {
	case tr.KeyID != id.KeyID:
		d.Report(LevelFail, "trust", fmt.Sprintf("%s names key %s, the TPM holds %s", d.trust, tr.KeyID, id.KeyID),
			"approve this TPM's key at the archive (edgeseal tpm enroll --out, archive enroll-file, devices approve), or restore the enrolled tpm state")
	case tr.DeviceName() != d.cfg.DeviceID():
		d.Report(LevelFail, "trust", fmt.Sprintf("%s is for %s, this agent is %s", d.trust, tr.DeviceName(), d.cfg.DeviceID()), "use this device's DEVICE.json")
	case slices.Equal(pcrs, id.PCRs) && len(differ) > 0 && tr.PCRPolicy() != nil:
		d.Report(LevelOK, "trust", fmt.Sprintf("key matches %s; PCR %v moved since enrollment, the chain's authorization records carry the values in force", d.trust, differ), "")
	case !slices.Equal(pcrs, id.PCRs) || len(differ) > 0:
		d.Report(LevelFail, "trust", fmt.Sprintf("current PCRs %v differ from the enrolled golden values in %s", differ, d.trust), reenrollFix)
	default:
		d.Report(LevelOK, "trust", fmt.Sprintf("key and golden PCRs match %s", d.trust), "")
	}
}

// checkJournal opens the stopped agent's journal and verifies its tail:
// sequence numbers, the hash chain from record to record, the device,
// time order, the journal's last leaf, and the last checkpoint's root.
func (d *Doctor) checkJournal(key []byte) {
	dir := agent.JournalDir(d.cfg)
	j, err := agent.OpenJournal(d.ctx, d.cfg, key, agent.JournalOptions{})
	if err != nil {
		d.Report(LevelFail, "journal", "open: "+err.Error(), "see the agent's log; restore "+d.cfg.DataDir+" from backup if the journal is damaged")
		return
	}
	defer j.Close()
	n, err := agent.VerifyTail(d.ctx, j, d.cfg.DeviceID(), tailRecords)
	if err != nil {
		d.Report(LevelFail, "journal", err.Error(), "the journal is damaged: keep a copy of "+dir+", restore from backup, and report it")
		return
	}
	size := j.Size()
	if size > 0 {
		if rec, err := j.Record(size - 1); err == nil {
			if r, err := custody.ParseRecord(rec); err == nil {
				d.lastRecord = r.Time
			}
		}
	}
	cp := "no seal yet"
	cpSize, note, err := j.LastCheckpoint()
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		d.Report(LevelFail, "journal", "last checkpoint: "+err.Error(), "restore from backup")
		return
	default:
		c, perr := merkle.ParseCheckpoint(note)
		root, rerr := j.Root(cpSize)
		if perr != nil || rerr != nil || c.Size != cpSize || root != c.Root {
			d.Report(LevelFail, "journal", fmt.Sprintf("the last checkpoint (size %d) does not match the journal's tree", cpSize),
				"the journal is damaged: keep a copy, restore from backup, and report it")
			return
		}
		cp = fmt.Sprintf("last checkpoint at %d matches", cpSize)
	}
	d.Report(LevelOK, "journal", fmt.Sprintf("%d records; last %d verified (chain, sequence, device, time order); %s", size, n, cp), "")
	depth := 0
	if err := j.OutboxIDs(d.ctx, func(string) error { depth++; return nil }); err != nil {
		d.Report(LevelFail, "outbox", err.Error(), "")
		return
	}
	d.reportOutbox(depth, "")
	d.reportJournalDelivery(j)
}

// reportOutbox warns when bundles wait for delivery.
func (d *Doctor) reportOutbox(depth int, via string) {
	if depth == 0 {
		d.Report(LevelOK, "outbox", "empty: every sealed bundle was receipted by the archive"+via, "")
		return
	}
	fix := "check the broker line below and the archive; without a broker, carry bundles with edgeseal bundles export"
	d.Report(LevelWarn, "outbox", fmt.Sprintf("%d bundle(s) wait for the archive's receipt%s", depth, via), fix)
}

// viaAgent asks the running agent's /v1/status over its socket.
func (d *Doctor) viaAgent() {
	if d.cfg.API.Socket == "" {
		d.Report(LevelWarn, "status", "the agent has no unix socket (api.socket): TPM and journal not checked", "stop the agent and run doctor again")
		return
	}
	if d.token == "" {
		d.Report(LevelWarn, "status", "no token: TPM, PCRs and journal not checked while the agent runs",
			"give an auditor's token (--token-file or EDGESEAL_TOKEN), or stop the agent and run doctor again")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
	defer cancel()
	c, err := api.NewClient(api.ClientOptions{Socket: d.cfg.API.Socket, Token: d.token, Timeout: 30 * time.Second})
	if err != nil {
		d.Report(LevelFail, "status", err.Error(), "")
		return
	}
	defer c.CloseIdleConnections()
	st, err := c.Status(ctx)
	var se *api.StatusError
	switch {
	case errors.As(err, &se):
		d.Report(LevelFail, "status", fmt.Sprintf("GET /v1/status: %d %s", se.Status, http.StatusText(se.Status)), "the token must be an auditor's or operator's of this agent's config")
		return
	case err != nil:
		d.Report(LevelFail, "status", "the agent does not answer on "+d.cfg.API.Socket+": "+err.Error(),
			"see journalctl -u edgeseal-agent; restart it (systemctl restart edgeseal-agent)")
		return
	}
	switch st.TPM.State {
	case agent.TPMOK:
		d.Report(LevelOK, "tpm", "ok (the agent's view), signing key "+st.TPM.KeyID, "")
	case agent.TPMPCRMismatch:
		if st.Key.PCRPolicy {
			d.Report(LevelFail, "pcrs", fmt.Sprintf("PCR %v differ from the authorized values: the agent journals but cannot seal", st.TPM.Changed), authorizeFix)
		} else {
			d.Report(LevelFail, "pcrs", fmt.Sprintf("PCR %v changed since enrollment: the agent journals but cannot seal", st.TPM.Changed), reenrollFix)
		}
	default:
		d.Report(LevelFail, "tpm", "error: "+st.TPM.Error, "check the TPM (ls -l /dev/tpmrm0, group tss) and journalctl -u edgeseal-agent")
	}
	last := "no seal yet"
	if st.LastSeal != nil && !st.LastSeal.Time.IsZero() {
		last = "last seal " + st.LastSeal.Time.Format(time.RFC3339)
		if st.Pending > 0 && d.now().Sub(st.LastSeal.Time) > 2*d.cfg.Seal.Interval+time.Minute {
			d.Report(LevelWarn, "seal", fmt.Sprintf("%d records pending and the %s", st.Pending, last), "see journalctl -u edgeseal-agent for seal errors")
		}
	}
	d.Report(LevelOK, "journal", fmt.Sprintf("%d records, %d pending, %s (the agent's view; its tail is verified when the agent is stopped)", st.JournalSize, st.Pending, last), "")
	d.reportOutbox(st.Outbox, " (the agent's view)")
	d.reportAgentLink(st)
}

// checkBroker connects to the configured broker once with the configured
// certificates (TLS handshake and MQTT CONNECT), under a client id of its
// own so the agent's session is left alone.
func (d *Doctor) checkBroker() {
	s := d.cfg.Sync
	if s.Broker == "" {
		d.Report(LevelOK, "broker", "sync is off (no sync.broker): bundles wait in the outbox for edgeseal bundles export", "")
		return
	}
	if _, err := agentd.ReadArchiveKey(s.ArchiveKey); err != nil {
		d.Report(LevelFail, "broker", err.Error(), "sync.archive_key must be the archive's KEYFILE.pub")
	}
	tc, err := syncTLSFor(s.Broker, s)
	if err != nil {
		d.Report(LevelFail, "broker", err.Error(), "check sync.ca, sync.cert and sync.key")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.timeout+time.Second)
	defer cancel()
	err = sync.Probe(ctx, sync.ProbeOptions{Broker: s.Broker, ClientID: "edgeseal-doctor-" + d.cfg.Site + "-" + d.cfg.Device, TLS: tc, Timeout: d.timeout})
	if err != nil {
		d.Report(LevelFail, "broker", err.Error(),
			"check that the broker runs and is reachable from here (address, port, firewall), that sync.ca trusts its certificate, and that the broker accepts sync.cert")
		return
	}
	d.Report(LevelOK, "broker", "connected to "+s.Broker+" with the configured certificates", "")
}

// checkClock compares the system clock with the journal's last record and
// a floor, and asks the kernel whether NTP keeps it synchronised.
func (d *Doctor) checkClock() {
	now := d.now()
	floor := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	switch {
	case now.Before(floor):
		d.Report(LevelFail, "clock", "the system clock says "+now.Format(time.RFC3339), "set the clock and enable NTP (timedatectl set-ntp true)")
		return
	case !d.lastRecord.IsZero() && now.Before(d.lastRecord):
		d.Report(LevelFail, "clock", fmt.Sprintf("the system clock (%s) is behind the journal's last record (%s)", now.Format(time.RFC3339), d.lastRecord.Format(time.RFC3339)),
			"set the clock and enable NTP (timedatectl set-ntp true)")
		return
	}
	synced, known := clockSynced()
	switch {
	case known && !synced:
		d.Report(LevelWarn, "clock", now.UTC().Format(time.RFC3339)+", but the kernel says it is not synchronised", "enable NTP (timedatectl set-ntp true) so record times and certificate checks hold")
	default:
		d.Report(LevelOK, "clock", now.UTC().Format(time.RFC3339)+clockNote(known), "")
	}
}

func clockNote(known bool) string {
	if known {
		return ", synchronised"
	}
	return ""
}

// checkDisk reports the free space of the data directory's filesystem.
func (d *Doctor) checkDisk() {
	free, total, err := diskSpace(d.cfg.DataDir)
	if err != nil {
		d.Report(LevelWarn, "disk", "free space unknown: "+err.Error(), "")
		return
	}
	msg := fmt.Sprintf("%s free of %s in %s", humanBytes(free), humanBytes(total), d.cfg.DataDir)
	fix := "free space on that filesystem or grow it; the journal refuses exports when less than " + humanBytes(store.DefaultMinFreeBytes) + " is free"
	switch {
	case free < failDisk:
		d.Report(LevelFail, "disk", msg, fix)
	case free < warnDisk || total > 0 && free*100/total < warnDiskPct:
		d.Report(LevelWarn, "disk", msg, fix)
	default:
		d.Report(LevelOK, "disk", msg, "")
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// syncTLSFor is the TLS the publisher uses for broker: agentd.SyncTLS
// when a CA or client certificate is configured, else nil (the system
// roots for ssl://).
func syncTLSFor(broker string, s config.Sync) (*tls.Config, error) {
	if s.CA == "" && s.Cert == "" {
		return nil, nil
	}
	return agentd.SyncTLS(s)
}

// authorizeFix is the fix line for PCRs that moved under keys bound to a
// PCR-policy key.
const authorizeFix = "read the PCRs (tpm2_pcrread sha256:0,2,4,7), have the operator sign them (edgeseal tpm authorize-pcrs), then edgeseal agent authorize-pcrs --config AGENT.yaml FILE"

// checkPCRAuthorization installs the stored PCR authorization, as the
// agent does at start, and reports it.
func (d *Doctor) checkPCRAuthorization(ctx context.Context, t *tpm.TPM) {
	a, err := agent.LoadPCRAuthorization(ctx, d.cfg.TPMStateDir, d.cfg.DeviceID(), t)
	switch {
	case err != nil:
		d.Report(LevelFail, "pcr-auth", err.Error(), authorizeFix)
	case a == nil:
		d.Report(LevelFail, "pcr-auth", "the keys are bound to a PCR policy key and no authorization is stored in "+d.cfg.TPMStateDir, authorizeFix)
	default:
		d.Report(LevelOK, "pcr-auth", fmt.Sprintf("authorization of PCRs %v signed %s by %s", a.PCRSelection.PCRs, a.Time, a.PolicyKeyID), "")
	}
}
