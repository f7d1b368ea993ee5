package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// With operator keys configured (Options.OperatorKeys) the device states
// the archive trusts are the archive log's: its signed device statements
// (device.approve, device.revoke, device.revoke-key) and its rekey
// statements, read at Open into a deviceGate. devices.json stays the
// store of the pending enrollment requests and of the trust material, and
// a cache of the states the archive rewrites; a bundle is accepted only
// when the log approves its device's key and the very DEVICE.json
// (TrustDigest) devices.json holds for it. A hand edit of devices.json
// therefore approves nothing, and does not undo a logged revocation.
// Without operator keys devices.json alone decides, as before.

// TrustDigest is the "sha256:.." of a DEVICE.json without insignificant
// whitespace (CompactTrust: devices.json stores the trust indented), the
// trust a device.approve statement names.
func TrustDigest(trust []byte) string {
	return wire.FormatHash(sha256.Sum256(CompactTrust(trust)))
}

// trusted is Devices.Trusted checked against the log's statements when
// operator keys are configured; it first takes the statements queued in
// the pending folder.
func (a *Archive) trusted(ctx context.Context, name string) (*trustfile.Trust, DeviceInfo, error) {
	if a.gate != nil {
		a.followLog(ctx)
		a.takePending(ctx, false)
		a.syncDevices(ctx)
	}
	t, info, err := a.devices.Trusted(name)
	if err != nil || a.gate == nil {
		return t, info, err
	}
	if info, err = a.gate.check(name, info); err != nil {
		return nil, info, err
	}
	return t, info, nil
}

// openGate builds the device states from the archive log, lays them over
// devices.json (writing it anew when it differs: devices_view.go), and
// takes the queued statements. Without operator keys it warns: devices.json decides.
func (a *Archive) openGate(ctx context.Context) error {
	if len(a.opts.OperatorKeys) == 0 {
		a.lg.Warn("no operator_keys configured: device approvals and revocations are unsigned and devices.json alone decides which devices are trusted; production archives need operator keys")
		return nil
	}
	g := newDeviceGate()
	n := a.log.size()
	if err := a.log.records(ctx, 0, n, g.applyRecord); err != nil {
		return err
	}
	a.gateRead = n
	if err := a.learnAdmins(ctx, g); err != nil {
		return err
	}
	a.gate = g
	a.devices.follow(g.view)
	if err := a.devices.sync(ctx); err != nil {
		return err
	}
	for _, name := range g.incomplete() {
		a.lg.Error("device approved by a statement that names only the digest of its DEVICE.json, and devices.json holds no copy of it: the device stays pending until an operator approves it again", "device", name)
	}
	a.takePending(ctx, true)
	return nil
}

// DeviceStatement takes a signed device statement (the canonical JSON an
// operator signed, see SignOperatorStatement): it checks the statement,
// its operator key and what it names against the registry, appends it to
// the archive log, then applies it to the log's device states, which
// devices.json then shows.
func (a *Archive) DeviceStatement(ctx context.Context, rec []byte) (*Logged, error) {
	s, err := ParseOperatorStatement(rec)
	if err != nil {
		return nil, err
	}
	if !isDeviceStatement(s.Type) {
		return nil, &OperatorError{Op: s.Type, Reason: "not a device statement"}
	}
	if a.gate == nil {
		return nil, &OperatorError{Op: s.Type, Reason: "the archive has no operator keys (operator_keys)"}
	}
	a.followLog(ctx)
	if err := a.checkOperatorKey(ctx, s.Type, s.Operator); err != nil {
		return nil, err
	}
	if err := a.checkDeviceStatement(s); err != nil {
		return nil, err
	}
	res, err := a.appendStatement(ctx, rec)
	if err != nil {
		return nil, err
	}
	a.gate.apply(res.Statement)
	err = a.devices.sync(ctx)
	a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Device: s.Device, Reasons: []string{
		fmt.Sprintf("%s %s key %s by %s (operator key %s), archive log index %d", s.Type, s.Device, orNone(s.KeyID), s.By, s.Key, res.LogIndex)}})
	if err != nil {
		return res, fmt.Errorf("archive: %s logged at %d, devices.json not updated: %w", s.Type, res.LogIndex, err)
	}
	return res, nil
}

// checkDeviceStatement checks what s names against devices.json: an
// approval names a pending request of the device with that key and
// DEVICE.json, activated unless NoActivation; a revocation a known
// device.
func (a *Archive) checkDeviceStatement(s *OperatorStatement) error {
	list, err := a.devices.List()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(d DeviceInfo) bool { return d.Name == s.Device })
	if i < 0 {
		return &DeviceError{Device: s.Device, Op: s.Type, Reason: "not enrolled"}
	}
	info := list[i]
	fail := func(reason string) error {
		return &DeviceError{Device: s.Device, Status: info.Status, Op: s.Type, Reason: reason}
	}
	if s.Type != StatementDeviceApprove {
		return nil
	}
	p := info.PendingKey(s.KeyID)
	switch {
	case p == nil:
		return fail("no pending key " + s.KeyID)
	case TrustDigest(p.Request.Trust) != s.TrustDigest:
		return fail("the pending DEVICE.json of key " + s.KeyID + " is not " + s.TrustDigest)
	case !p.Activated() && !s.NoActivation:
		return fail(notActivatedReason(s.Device, s.KeyID, p.Challenge != ""))
	}
	return nil
}

// checkOperatorKey refuses a key that is not an operator key of the
// archive, or that is a policy administrator's (separation of duties).
func (a *Archive) checkOperatorKey(ctx context.Context, op string, pub []byte) error {
	if len(pub) != 32 || !a.isOperator(pub) {
		return &OperatorError{Op: op, Reason: "key is not an operator key of the archive (operator_keys)"}
	}
	if a.gate == nil {
		return nil
	}
	kid := KeyID(pub)
	a.gate.mu.Lock()
	dev, admin := a.gate.admins[kid]
	a.gate.mu.Unlock()
	if admin {
		a.alert(ctx, Alert{Severity: SeverityAlarm, Kind: KindOperator, Reasons: []string{
			fmt.Sprintf("%s refused: operator key %s is also a policy administrator key (policy of %s): one key must not hold both duties", op, kid, dev)}})
		return &OperatorError{Op: op, Reason: "operator key " + kid + " is also a policy administrator key (seen in the policy of " + dev + ")"}
	}
	return nil
}
