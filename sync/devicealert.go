package sync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Device alerts: an alarm the agent raises (a governance alert, a refused
// policy reload, the outbox over its quota, ...) travels to the archive
// and to monitoring as one small canonical JSON message on the device's
// own alert topic, edgeseal/v1/alerts/<site>/<device> (docs/formats.md,
// "Device alert").
const (
	// MaxDeviceAlert bounds a device alert message; a bigger one is
	// refused by ParseDeviceAlert.
	MaxDeviceAlert = 1024
	// MaxAlertDetail bounds DeviceAlert.Detail in bytes; Marshal cuts a
	// longer detail (at a character boundary, ending it with "...").
	MaxAlertDetail = 512
	// maxAlertKind bounds DeviceAlert.Kind.
	maxAlertKind = 64
)

// The device alert kinds besides the governance.alert kinds
// (custody.AlertSchemaChanged, ...), which travel under their own names.
const (
	// AlertPolicyRefused: a policy reload was refused (unsigned, below
	// the threshold, not valid); the policy in force stays.
	AlertPolicyRefused = "policy.refused"
	// AlertOutboxQuota: the outbox went over its quota (bundles are not
	// reaching the archive).
	AlertOutboxQuota = "outbox.quota"
	// AlertPCRAuthorization: an operator's PCR authorization could not
	// be applied (the PCRs do not hold its values, or it does not verify).
	AlertPCRAuthorization = "pcr.authorization"
	// AlertArchiveInconsistent: a receipt's archive log checkpoint is not
	// consistent with the one the agent accepted before (the archive log
	// forked or was rewritten); the receipt was refused.
	AlertArchiveInconsistent = "archive.inconsistent"
	// AlertOutboxStatus is not an alarm: the agent's periodic report of
	// its outbox (DeviceAlert.Outbox), how long bundles have waited.
	AlertOutboxStatus = "outbox.status"
)

// MaxOutboxDepth bounds OutboxReport.Depth.
const MaxOutboxDepth = 1 << 40

// OutboxReport is what an outbox.status report says of the outbox.
type OutboxReport struct {
	// Depth is the number of bundles waiting for their receipt.
	Depth int64 `json:"depth"`
	// Oldest is when the oldest of them was sealed (wire.TimeLayout);
	// absent when the outbox is empty or the time is unknown.
	Oldest string `json:"oldest,omitempty"`
}

// KnownDeviceAlertKinds are the kinds the agent raises, for bounded
// metric labels: the receiving side counts any other as "other".
var KnownDeviceAlertKinds = []string{"schema.changed", "destination.new", "signer.unknown", "retention.short",
	AlertPolicyRefused, AlertOutboxQuota, AlertPCRAuthorization, AlertArchiveInconsistent}

// DeviceAlertsFilter is the subscription to every device's alerts.
const DeviceAlertsFilter = topicRoot + "alerts/+/+"

// DeviceAlertsTopic is where device site/device publishes its alerts.
func DeviceAlertsTopic(site, device string) string {
	return topicRoot + "alerts/" + site + "/" + device
}

// parseDeviceAlertsTopic returns site and device of
// edgeseal/v1/alerts/<site>/<device>.
func parseDeviceAlertsTopic(topic string) (site, device string, ok bool) {
	rest, ok := strings.CutPrefix(topic, topicRoot+"alerts/")
	if !ok {
		return "", "", false
	}
	site, device, ok = strings.Cut(rest, "/")
	if !ok || wire.CheckDevice(site+"/"+device) != nil {
		return "", "", false
	}
	return site, device, true
}

// DeviceAlert is one device alert. Its JSON is canonical (RFC 8785):
// members in this order, seq absent when the alarm has no journal record.
type DeviceAlert struct {
	// Detail is a short human-readable text (at most MaxAlertDetail
	// bytes, no control characters).
	Detail string `json:"detail"`
	Device string `json:"device"`
	// Kind is the alarm: a governance.alert kind (schema.changed,
	// destination.new, signer.unknown, retention.short), policy.refused,
	// outbox.quota, pcr.authorization, archive.inconsistent; or
	// outbox.status, a report;
	// [a-z0-9._-]{1,64}.
	Kind string `json:"kind"`
	// Outbox is the report of an outbox.status message (only there).
	Outbox *OutboxReport `json:"outbox,omitempty"`
	// Seq is the journal sequence number of the record that journaled
	// the alarm (a governance.alert), absent when there is none.
	Seq  *uint64 `json:"seq,omitempty"`
	Site string  `json:"site"`
	// Time is when the agent raised it (wire.TimeLayout, UTC).
	Time string `json:"time"`
}

// DeviceAlertError is a device alert that is not well formed.
type DeviceAlertError struct{ Reason string }

func (e *DeviceAlertError) Error() string { return "sync: device alert: " + e.Reason }

// NewDeviceAlert builds an alert of kind raised at t with detail cleaned
// and cut to MaxAlertDetail; seq < 0 means no journal record.
func NewDeviceAlert(site, device, kind string, t time.Time, seq int64, detail string) DeviceAlert {
	a := DeviceAlert{Site: site, Device: device, Kind: kind, Time: wire.FormatTime(t), Detail: cleanDetail(detail)}
	if seq >= 0 {
		s := uint64(seq)
		a.Seq = &s
	}
	return a
}

// NewOutboxStatus builds the outbox.status report at t of an outbox of
// depth bundles, the oldest sealed at oldest (zero: none or unknown).
func NewOutboxStatus(site, device string, t time.Time, depth int, oldest time.Time) DeviceAlert {
	a := NewDeviceAlert(site, device, AlertOutboxStatus, t, -1, "")
	a.Outbox = &OutboxReport{Depth: int64(depth)}
	if !oldest.IsZero() {
		a.Outbox.Oldest = wire.FormatTime(oldest)
	}
	return a
}

// cleanDetail replaces control characters and invalid UTF-8 by spaces and
// cuts the text to MaxAlertDetail bytes.
func cleanDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= MaxAlertDetail {
		return s
	}
	cut := MaxAlertDetail - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// check validates a's fields.
func (a *DeviceAlert) check() error {
	if err := wire.CheckDevice(a.Site + "/" + a.Device); err != nil {
		return &DeviceAlertError{Reason: err.Error()}
	}
	if !validKind(a.Kind) {
		return &DeviceAlertError{Reason: fmt.Sprintf("kind %.80q is not [a-z0-9._-]{1,64}", a.Kind)}
	}
	if _, err := wire.ParseTime(a.Time); err != nil {
		return &DeviceAlertError{Reason: "time: " + err.Error()}
	}
	if len(a.Detail) > MaxAlertDetail || cleanDetail(a.Detail) != a.Detail {
		return &DeviceAlertError{Reason: "detail too long or with control characters"}
	}
	if (a.Kind == AlertOutboxStatus) != (a.Outbox != nil) {
		return &DeviceAlertError{Reason: "an outbox report is the outbox.status kind and only it"}
	}
	if o := a.Outbox; o != nil {
		if o.Depth < 0 || o.Depth > MaxOutboxDepth {
			return &DeviceAlertError{Reason: fmt.Sprintf("outbox depth %d out of range", o.Depth)}
		}
		if o.Oldest != "" {
			if _, err := wire.ParseTime(o.Oldest); err != nil {
				return &DeviceAlertError{Reason: "outbox oldest: " + err.Error()}
			}
		}
	}
	return nil
}

func validKind(k string) bool {
	if k == "" || len(k) > maxAlertKind {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Marshal checks a and returns its canonical JSON.
func (a *DeviceAlert) Marshal() ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("sync: device alert: %w", err)
	}
	out, err := canonjson.Append(nil, raw)
	if err != nil {
		return nil, fmt.Errorf("sync: device alert: %w", err)
	}
	if len(out) > MaxDeviceAlert {
		return nil, &DeviceAlertError{Reason: fmt.Sprintf("%d bytes (max %d)", len(out), MaxDeviceAlert)}
	}
	return out, nil
}

// ParseDeviceAlert decodes a device alert strictly: at most
// MaxDeviceAlert bytes, known members only, canonical JSON, valid fields.
func ParseDeviceAlert(b []byte) (*DeviceAlert, error) {
	if len(b) > MaxDeviceAlert {
		return nil, &DeviceAlertError{Reason: fmt.Sprintf("%d bytes (max %d)", len(b), MaxDeviceAlert)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a DeviceAlert
	if err := dec.Decode(&a); err != nil {
		return nil, &DeviceAlertError{Reason: "json: " + err.Error()}
	}
	canon, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, &DeviceAlertError{Reason: "not canonical JSON with all members"}
	}
	return &a, nil
}
