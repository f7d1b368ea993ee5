package archive

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// Alert kinds of enrollments.
const (
	KindEnrollment        = "device.enrollment"         // a request waits for an operator
	KindEnrollmentRefused = "device.enrollment.refused" // a request was not stored
	// KindEnrollmentApproved: a request with a new key for a device
	// already approved (an alarm: a rekey after a TPM clear or a board
	// swap, a key rotation, or someone enrolling in its name).
	KindEnrollmentApproved = "device.enrollment.approved-device"
	// KindEnrollmentEvicted: a pending request was dropped to keep the
	// bounds (MaxPendingPerDevice, MaxPendingTotal).
	KindEnrollmentEvicted = "device.enrollment.evicted"
	// KindActivationFailed: an activation response did not prove the
	// challenge's credential (an alarm).
	KindActivationFailed = "device.enrollment.activation-failed"
)

// watchEnrollments wires the registry's EK roots and eviction alerts.
func (a *Archive) watchEnrollments(roots *x509.CertPool) {
	if roots != nil {
		a.devices.SetEKRoots(roots)
	}
	a.devices.OnEvict(func(ctx context.Context, e Evicted) {
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindEnrollmentEvicted, Device: e.Device, Reasons: []string{
			fmt.Sprintf("pending key %s (received %s) dropped: more than %d pending requests %s; the device enrolls again if it still needs it",
				e.KeyID, e.ReceivedAt, map[string]int{"per device": MaxPendingPerDevice, "in total": pendingTotal}[e.Reason], e.Reason)}})
	})
}

// ReceiveEnrollment takes an enrollment request that came on MQTT
// edgeseal/v1/<site>/<device>/enroll: it parses it (ParseEnrollRequest),
// checks that the topic's device is the one the trust names, and records
// it with Devices.Enroll: pending, never approved here (an operator runs
// `edgeseal archive devices approve`). Every request is logged and
// alerted (an alarm when the device is approved already). The reply is
// the signed sync.EnrollAck for the device's enroll/reply topic: pending
// (for a new key of an approved device, with the operator's choice,
// rekey or approve, as its reason; or approved when this exact trust is
// already the approved one), or refused with the reason (a request that
// does not parse, names another device, carries a revoked key, or an EK
// certificate the archive does not accept). A pending answer whose
// credential is not activated carries a credential challenge
// (Devices.Challenge); the device's ActivationResponse comes on the same
// topic and is answered the same way (pending, "credential activated",
// or refused). An error without a reply means the registry could not be
// written; the device may send again.
func (a *Archive) ReceiveEnrollment(ctx context.Context, site, name string, raw []byte) ([]byte, error) {
	topic := site + "/" + name
	ack := &sync.EnrollAck{Device: topic, Request: wire.FormatHash(sha256.Sum256(raw)), Time: wire.FormatTime(a.now())}
	refuse := func(severity, kind, reason string) ([]byte, error) {
		if len(reason) > 1024 {
			reason = reason[:1021] + "..."
		}
		ack.Status, ack.Reason = sync.EnrollRefused, reason
		a.alert(ctx, Alert{Severity: severity, Kind: kind, Device: topic,
			Reasons: []string{reason, "request " + ack.Request}})
		return a.signAck(ack)
	}
	if err := wire.CheckDevice(topic); err != nil {
		return nil, fmt.Errorf("archive: enrollment: %w", err)
	}
	if IsActivationResponse(raw) {
		return a.receiveActivation(ctx, topic, raw, ack)
	}
	req, err := ParseEnrollRequest(raw)
	if err != nil {
		return refuse(SeverityWarning, KindEnrollmentRefused, "malformed request: "+err.Error())
	}
	t := req.ParsedTrust()
	ack.KeyID = t.KeyID
	if t.DeviceName() != topic {
		return refuse(SeverityWarning, KindEnrollmentRefused, fmt.Sprintf("the request is for device %s, it came on the topic of %s", t.DeviceName(), topic))
	}
	info, err := a.devices.Enroll(ctx, req)
	if de, ok := errors.AsType[*DeviceError](err); ok {
		return refuse(SeverityWarning, KindEnrollmentRefused, de.Reason)
	}
	if err != nil {
		return nil, err
	}
	p := info.PendingKey(t.KeyID)
	ack.Status = sync.EnrollPending
	if info.Status == StatusApproved && p == nil {
		ack.Status = sync.EnrollApproved
		a.lg.Info("enrollment of an approved device repeated", "device", topic, "key", t.KeyID)
		return a.signAck(ack)
	}
	steps := EnrollNextSteps(info, t.KeyID)
	if info.Status == StatusApproved { // a new key of an approved device: the device's operator reads the choice
		ack.Reason = strings.Join(steps, "; ")
	}
	if p != nil && !p.Activated() {
		ch, err := a.devices.Challenge(ctx, topic, t.KeyID)
		if de, ok := errors.AsType[*DeviceError](err); ok {
			// Approved, rekeyed or evicted meanwhile: answer without one.
			a.lg.Warn("enrollment answered without a credential challenge", "device", topic, "key", t.KeyID, "why", de.Reason)
		} else if err != nil {
			return nil, err
		} else {
			b, err := ch.Marshal()
			if err != nil {
				return nil, err
			}
			ack.Challenge = string(b)
		}
	}
	al := Alert{Severity: SeverityWarning, Kind: KindEnrollment, Device: topic, Reasons: append([]string{
		fmt.Sprintf("key %s waits for approval (device status %s, %d pending key(s)); current PCRs match the key's policy: %v",
			t.KeyID, info.Status, len(info.Requests), req.PCRsMatch())}, steps...)}
	if info.Status == StatusApproved {
		al.Severity, al.Kind = SeverityAlarm, KindEnrollmentApproved
		al.Reasons[0] = fmt.Sprintf("a new key %s was enrolled for %s, approved with key %s: if nobody cleared its TPM, replaced its board or disk or updated its firmware, someone may be enrolling in its name; %d pending key(s); current PCRs match the new key's policy: %v",
			t.KeyID, topic, info.KeyID, len(info.Requests), req.PCRsMatch())
	}
	a.alert(ctx, al)
	return a.signAck(ack)
}

// receiveActivation takes an ActivationResponse on a device's enroll
// topic.
func (a *Archive) receiveActivation(ctx context.Context, topic string, raw []byte, ack *sync.EnrollAck) ([]byte, error) {
	fail := func(severity, kind, reason string) ([]byte, error) {
		ack.Status, ack.Reason = sync.EnrollRefused, reason
		a.alert(ctx, Alert{Severity: severity, Kind: kind, Device: topic, Reasons: []string{reason, "activation " + ack.Request}})
		return a.signAck(ack)
	}
	r, err := ParseActivationResponse(raw)
	if err != nil {
		return fail(SeverityWarning, KindEnrollmentRefused, "malformed activation response: "+err.Error())
	}
	ack.KeyID = r.KeyID
	if r.Device != topic {
		return fail(SeverityWarning, KindEnrollmentRefused, fmt.Sprintf("the activation response is for device %s, it came on the topic of %s", r.Device, topic))
	}
	info, err := a.devices.Activate(ctx, r)
	if de, ok := errors.AsType[*DeviceError](err); ok {
		return fail(SeverityAlarm, KindActivationFailed, de.Reason)
	}
	if err != nil {
		return nil, err
	}
	ack.Status = sync.EnrollPending
	ack.Reason = "credential activated (the AK is in the TPM of the EK), pending approval; " + strings.Join(EnrollNextSteps(info, r.KeyID), "; ")
	a.lg.Info("enrollment credential activated over MQTT", "device", topic, "key", r.KeyID)
	return a.signAck(ack)
}

func (a *Archive) signAck(ack *sync.EnrollAck) ([]byte, error) {
	k := a.cur.Load()
	b, err := sync.SignEnrollAck(ack, k.keyID, k.key)
	if err != nil {
		return nil, fmt.Errorf("archive: enrollment answer: %w", err)
	}
	return b, nil
}
