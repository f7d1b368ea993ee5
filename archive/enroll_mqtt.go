package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/sync"
)

// Alert kinds of enrollments.
const (
	KindEnrollment        = "device.enrollment"         // a request waits for an operator
	KindEnrollmentRefused = "device.enrollment.refused" // a request was not stored
)

// ReceiveEnrollment takes an enrollment request that came on MQTT
// edgeseal/v1/<site>/<device>/enroll: it parses it (ParseEnrollRequest),
// checks that the topic's device is the one the trust names, and records
// it with Devices.Enroll: pending, never approved here (an operator runs
// `edgeseal archive devices approve`). Every request is logged and
// alerted. The reply is the signed sync.EnrollAck for the device's
// enroll/reply topic: pending (or approved when this exact trust is
// already the approved one), or refused with the reason (a request that
// does not parse, names another device, or carries a revoked key). An
// error without a reply means the registry could not be written; the
// device may send again.
func (a *Archive) ReceiveEnrollment(ctx context.Context, site, name string, raw []byte) ([]byte, error) {
	topic := site + "/" + name
	ack := &sync.EnrollAck{Device: topic, Request: bundle.FormatHash(sha256.Sum256(raw)), Time: bundle.FormatTime(a.now())}
	refuse := func(reason string) ([]byte, error) {
		if len(reason) > 1024 {
			reason = reason[:1021] + "..."
		}
		ack.Status, ack.Reason = sync.EnrollRefused, reason
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindEnrollmentRefused, Device: topic,
			Reasons: []string{reason, "request " + ack.Request}})
		return a.signAck(ack)
	}
	if err := bundle.CheckDevice(topic); err != nil {
		return nil, fmt.Errorf("archive: enrollment: %w", err)
	}
	req, err := ParseEnrollRequest(raw)
	if err != nil {
		return refuse("malformed request: " + err.Error())
	}
	t := req.ParsedTrust()
	ack.KeyID = t.KeyID
	if t.DeviceName() != topic {
		return refuse(fmt.Sprintf("the request is for device %s, it came on the topic of %s", t.DeviceName(), topic))
	}
	info, err := a.devices.Enroll(ctx, req)
	if de, ok := errors.AsType[*DeviceError](err); ok {
		return refuse(de.Reason)
	}
	if err != nil {
		return nil, err
	}
	ack.Status = sync.EnrollPending
	if info.Status == StatusApproved && info.Pending == nil {
		ack.Status = sync.EnrollApproved
		a.lg.Info("enrollment of an approved device repeated", "device", topic, "key", t.KeyID)
	} else {
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindEnrollment, Device: topic, Reasons: []string{
			fmt.Sprintf("key %s waits for approval (device status %s); current PCRs match the key's policy: %v",
				t.KeyID, info.Status, req.PCRsMatch()),
			"approve with: edgeseal archive devices approve " + topic + " --key " + t.KeyID,
		}})
	}
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
