package archive

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Alert severities and kinds.
const (
	SeverityWarning = "warning" // a refused bundle
	SeverityAlarm   = "alarm"   // a fork or altered storage: someone must look

	KindRejected       = "bundle.rejected"
	KindFork           = "bundle.fork"
	KindObjectConflict = "object.conflict"
	// KindObjectWrite: storing a bundle in the object store failed (a
	// write, fsync, link or directory sync); the bundle is not answered
	// and its device sends it again.
	KindObjectWrite = "object.write-failed"
	// KindStorageFailed: a commit of the log or the index failed; the
	// daemon stops for a restart (Archive.Failed).
	KindStorageFailed = "storage.failed"
)

// Alert is what the archive raises for a refused bundle or an alarm; the
// daemon publishes its JSON on MQTT edgeseal/v1/alerts.
type Alert struct {
	Time         string   `json:"time"`
	Severity     string   `json:"severity"`
	Kind         string   `json:"kind"`
	Device       string   `json:"device"`
	BundleDigest string   `json:"bundleDigest"`
	Checks       []string `json:"checks,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	Quarantine   string   `json:"quarantine,omitempty"`
	// Suppressed is the number of alerts of the same device, kind and
	// checks not raised since the last one (QuarantineLimits.AlertInterval).
	Suppressed uint64 `json:"suppressed,omitempty"`
}

func (a *Archive) alert(ctx context.Context, al Alert) {
	if al.Time == "" {
		al.Time = wire.FormatTime(a.now())
	}
	lvl := a.lg.Warn
	if al.Severity == SeverityAlarm {
		lvl = a.lg.Error
		a.stats.alarms.Add(1)
	}
	ok, suppressed := a.alerts.allow(al, a.now())
	if !ok {
		a.stats.alertsSuppressed.Add(1)
		a.lg.Debug("alert suppressed (rate limit)", "kind", al.Kind, "device", al.Device, "bundle", al.BundleDigest, "checks", al.Checks)
		return
	}
	al.Suppressed = suppressed
	lvl("ALERT "+al.Kind, "severity", al.Severity, "device", al.Device, "bundle", al.BundleDigest, "checks", al.Checks, "reasons", al.Reasons, "quarantine", al.Quarantine, "suppressed", al.Suppressed)
	if a.opts.Alert != nil {
		a.opts.Alert(ctx, al)
	}
	live := al
	live.Quarantine = "" // a server path
	a.Publish(Event{Type: EventAlert, Data: live})
}

// quarantineReason is the JSON kept beside a quarantined bundle.
type quarantineReason struct {
	RejectionReport
	Report *verify.Report `json:"report,omitempty"`
	// Size is the bundle's size; BytesKept tells whether its bytes are
	// kept beside (<hex>.tar).
	Size      int64 `json:"size"`
	BytesKept bool  `json:"bytesKept"`
}

// refuse quarantines the bundle, alerts and signs the rejection. The
// bytes are kept only when keep says so (a bundle of an approved device
// that reads as a bundle) and they fit the device's quota; raw may be nil
// when they are kept elsewhere.
func (a *Archive) refuse(ctx context.Context, digest [32]byte, topic string, raw []byte, keep bool, rep *verify.Report, fails ...failure) ([]byte, error) {
	rj := &RejectionReport{BundleDigest: wire.FormatHash(digest), Device: topic, Time: wire.FormatTime(a.now())}
	for _, f := range fails {
		rj.Checks = append(rj.Checks, f.check)
		rj.Reasons = append(rj.Reasons, f.check+": "+f.reason)
		rj.Alarm = rj.Alarm || f.alarm
	}
	if rep != nil {
		for _, c := range rep.Checks {
			if !c.OK && !slices.Contains(rj.Checks, c.Name) {
				rj.Checks = append(rj.Checks, c.Name)
				rj.Reasons = append(rj.Reasons, c.Name+": "+c.Detail)
			}
		}
	}
	a.stats.refused.Add(1)
	if !keep || !a.qidx.fits(int64(len(raw))) {
		keep = false
	}
	path, qerr := a.quarantine(digest, topic, raw, keep, quarantineReason{RejectionReport: *rj, Report: rep, Size: int64(len(raw))})
	kind, sev := KindRejected, SeverityWarning
	if rj.Alarm {
		kind, sev = KindFork, SeverityAlarm
	}
	al := Alert{Severity: sev, Kind: kind, Device: topic, BundleDigest: rj.BundleDigest, Checks: rj.Checks, Reasons: rj.Reasons, Quarantine: path}
	if qerr != nil {
		al.Reasons = append(slices.Clone(al.Reasons), "quarantine failed: "+qerr.Error())
	}
	a.alert(ctx, al)
	if qerr != nil {
		return nil, qerr // not kept: no answer, so the bundle comes again
	}
	k := a.cur.Load()
	reply, err := rj.Sign(k.keyID, k.key, k.tail()...)
	if err != nil { // a topic device that is no valid name: nobody to answer
		a.lg.Warn("rejection not signed", "device", topic, "err", err)
		reply = nil
	}
	return reply, &RejectedError{Rejection: rj, Quarantine: path}
}

// quarantine keeps a refused bundle's reason as quarantine/<hex>.json
// (the latest one), with, when keep is set, its bytes as
// quarantine/<hex>.tar (write-once), and returns the path of the kept
// bytes (of the reason when they are not kept). The oldest entries past
// the quotas are dropped (quarantine_quota.go).
func (a *Archive) quarantine(digest [32]byte, topic string, raw []byte, keep bool, why quarantineReason) (string, error) {
	base := filepath.Join(a.quar, hex.EncodeToString(digest[:]))
	keep = keep && raw != nil
	if keep {
		if _, err := os.Stat(base + ".tar"); errors.Is(err, fs.ErrNotExist) {
			if err := fsutil.WriteFileAtomic(base+".tar", raw, 0o440); err != nil {
				// Not durable: the next try must write it again, not
				// find it and skip the write.
				_ = os.Remove(base + ".tar")
				return "", err
			}
		}
	}
	why.BytesKept = keep || fileSize(base+".tar") > 0
	data, err := json.MarshalIndent(why, "", "  ")
	if err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(base+".json", append(data, '\n'), 0o640); err != nil {
		return "", err
	}
	a.account(digest, topic, fileSize(base+".tar")+int64(len(data)+1))
	if !why.BytesKept {
		return base + ".json", nil
	}
	return base + ".tar", nil
}
