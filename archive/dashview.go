package archive

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// What the dashboard reads beyond the export index's searches: the policy
// versions each device's exports were checked against, and the alerts the
// quarantine still holds. Both are bounded reads, never a scan of every
// export.

// DevicePolicy is a policy version seen in a device's exports.
type DevicePolicy struct {
	Device  string `json:"device"`
	Policy  string `json:"policy"`            // "sha256:..." of the policy
	Current bool   `json:"current"`           // the policy of the device's newest export
	First   string `json:"first,omitempty"`   // the oldest export under it (within the window read)
	Last    string `json:"last,omitempty"`    // the newest export under it
	Exports int    `json:"exports,omitempty"` // index entries under it (within the window read)
	last    time.Time
}

// MaxPolicyWindow is how many of a device's newest index entries
// DevicePolicies reads for one device in an index without policy keys.
const MaxPolicyWindow = 1000

// DevicePolicies returns the policy versions in force: without a device,
// for every device of the index the policy of its newest export (Current
// and Last set, First and Exports unset); with a device, the distinct
// policies of its index entries, newest (by its newest entry) first, each
// with the record times of its first and last entry and their count
// (Current: the newest). It reads the index's per-device policy keys (one
// prefix scan); an index written by a build without them is searched
// instead: one entry per device, and for one device its newest
// MaxPolicyWindow entries.
func (a *Archive) DevicePolicies(ctx context.Context, device string) ([]DevicePolicy, error) {
	if ok, err := hasIndexKeys(ctx, a.xi.x); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return a.policiesFromKeys(ctx, device)
	}
	if device != "" {
		return a.devicePolicyHistory(ctx, device)
	}
	devs, err := a.DeviceSummaries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DevicePolicy, 0, len(devs))
	for _, d := range sortedKeys(devs) {
		p, err := a.SearchExports(ctx, ExportQuery{Device: d, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(p.Items) == 1 && p.Items[0].Policy != "" {
			out = append(out, DevicePolicy{Device: d, Policy: p.Items[0].Policy, Current: true, Last: p.Items[0].Time})
		}
	}
	return out, nil
}

func (a *Archive) devicePolicyHistory(ctx context.Context, device string) ([]DevicePolicy, error) {
	var out []DevicePolicy
	at := map[string]int{}
	q := ExportQuery{Device: device, Limit: MaxPageLimit}
	for read := 0; read < MaxPolicyWindow; {
		q.Limit = min(MaxPageLimit, MaxPolicyWindow-read)
		p, err := a.SearchExports(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Items {
			if e.Policy == "" {
				continue
			}
			i, ok := at[e.Policy]
			if !ok {
				i = len(out)
				at[e.Policy] = i
				out = append(out, DevicePolicy{Device: device, Policy: e.Policy, Current: i == 0, Last: e.Time})
			}
			out[i].First = e.Time
			out[i].Exports++
		}
		read += len(p.Items)
		if p.Next == "" || len(p.Items) == 0 {
			break
		}
		q.Cursor = p.Next
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// QuarantineAlerts returns the alerts of the bundles the quarantine holds,
// newest first, at most limit: each refused bundle's latest refusal (an
// alarm for a fork or a replay, else a warning). The quarantine keeps
// what its limits allow (QuarantineLimits), so older alerts fall out of
// this list as it does.
func (a *Archive) QuarantineAlerts(limit int) []Alert {
	type ref struct{ name, device string }
	var refs []ref
	a.qidx.mu.Lock()
	for e := a.qidx.all.Back(); e != nil && len(refs) < limit; e = e.Prev() {
		q := e.Value.(*qentry)
		refs = append(refs, ref{q.name, q.device})
	}
	a.qidx.mu.Unlock()
	out := make([]Alert, 0, len(refs))
	for _, r := range refs {
		p := filepath.Join(a.quar, r.name+".json")
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var why RejectionReport
		if json.Unmarshal(data, &why) != nil {
			continue
		}
		al := Alert{Time: why.Time, Severity: SeverityWarning, Kind: KindRejected, Device: why.Device, BundleDigest: why.BundleDigest,
			Checks: why.Checks, Reasons: why.Reasons, Quarantine: p}
		if why.Alarm {
			al.Severity, al.Kind = SeverityAlarm, KindFork
		}
		out = append(out, al)
	}
	return out
}

// alertOpen reports whether an alert is still open: an alarm always, a
// refusal while the device has had no bundle accepted since.
func alertOpen(al Alert, lastAccepted string) bool {
	if al.Severity == SeverityAlarm || lastAccepted == "" {
		return true
	}
	t, err1 := wire.ParseTime(al.Time)
	l, err2 := wire.ParseTime(lastAccepted)
	return err1 != nil || err2 != nil || !l.After(t)
}

// OpenAlerts are the QuarantineAlerts (at most limit read) still open:
// every alarm, and a refusal when its device has had no bundle accepted
// since.
func (a *Archive) OpenAlerts(ctx context.Context, limit int) ([]Alert, error) {
	devs, err := a.DeviceSummaries(ctx)
	if err != nil {
		return nil, err
	}
	var out []Alert
	for _, al := range a.QuarantineAlerts(limit) {
		if alertOpen(al, devs[al.Device].LastAcceptedAt) {
			out = append(out, al)
		}
	}
	return out, nil
}
