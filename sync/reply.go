package sync

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/gowebpki/jcs"
)

// RejectionPayloadType is the DSSE payload type of a signed rejection.
const RejectionPayloadType = "application/vnd.edgeseal.rejection+json"

// Rejection is the archive's signed refusal of a bundle: the bundle digest
// ("sha256:<hex>"), the device ("<site>/<name>"), a reason, the names of
// the checks that failed, and the time (RFC 3339 UTC). It is the reply the
// device receives; the archive's fuller account, kept beside the
// quarantined bundle (one reason per check, the fork alarm), is
// archive.RejectionReport, whose Sign writes this reply.
type Rejection struct {
	BundleDigest string   `json:"bundleDigest"`
	Device       string   `json:"device"`
	Reason       string   `json:"reason"`
	Checks       []string `json:"checks"`
	Time         string   `json:"time"`
	// KeyChain is archivesig.Receipt.KeyChain: the archive's key
	// announcements, once it has rotated its key.
	KeyChain [][]byte `json:"keyChain,omitempty"`
}

func (r *Rejection) check() error {
	if _, err := wire.ParseHash(r.BundleDigest); err != nil {
		return err
	}
	if err := wire.CheckDevice(r.Device); err != nil {
		return err
	}
	if r.Reason == "" || len(r.Reason) > 4096 || len(r.Checks) > 256 {
		return fmt.Errorf("sync: rejection: reason empty or too long, or too many checks")
	}
	if len(r.KeyChain) > archivesig.MaxKeyChain {
		return fmt.Errorf("sync: rejection: key chain of %d announcements", len(r.KeyChain))
	}
	for _, a := range r.KeyChain {
		if len(a) == 0 || len(a) > archivesig.MaxArchiveKeySize {
			return fmt.Errorf("sync: rejection: key announcement of %d bytes", len(a))
		}
	}
	return nil
}

func (r *Rejection) marshal() ([]byte, error) {
	if r.Checks == nil {
		c := *r
		c.Checks = []string{}
		r = &c
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sync: rejection: %w", err)
	}
	return jcs.Transform(raw)
}

// SignRejection signs r with the archive's Ed25519 key as a DSSE envelope
// (the reply the archive publishes for a refused bundle).
func SignRejection(r *Rejection, keyID string, key crypto.Signer) ([]byte, error) {
	return signReply(r, RejectionPayloadType, keyID, key)
}

// VerifyRejection parses a signed rejection strictly and checks its
// signature (keyID "" accepts any key id whose signature verifies).
func VerifyRejection(b []byte, keyID string, pub ed25519.PublicKey) (*Rejection, error) {
	return verifyReply[Rejection](b, "rejection", RejectionPayloadType, keyID, pub)
}

// signedReply is a reply payload the archive signs: it checks its own
// content and has one canonical JSON form.
type signedReply interface {
	check() error
	marshal() ([]byte, error)
}

// signReply checks p and signs its canonical JSON as a DSSE envelope
// with the archive's Ed25519 key (an ed25519.PrivateKey or a token's
// signer).
func signReply(p signedReply, payloadType, keyID string, key crypto.Signer) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	payload, err := p.marshal()
	if err != nil {
		return nil, err
	}
	return archivesig.SignEnvelope(payloadType, payload, keyID, key)
}

// verifyReply parses a signed reply strictly (size, envelope, payload
// type, known fields, canonical JSON, content) and checks its signature
// (keyID "" accepts any key id whose signature verifies under pub). Every
// failure is a *ReplyError of the given kind.
func verifyReply[T any, P interface {
	*T
	signedReply
}](b []byte, kind, payloadType, keyID string, pub ed25519.PublicKey) (*T, error) {
	env, v, err := decodeReply[T, P](b, kind, payloadType)
	if err != nil {
		return nil, err
	}
	if err := verifyEnvelope(env, keyID, pub); err != nil {
		return nil, &ReplyError{Kind: kind, Reason: "signature", Err: err}
	}
	return v, nil
}

// decodeReply is verifyReply without the signature check.
func decodeReply[T any, P interface {
	*T
	signedReply
}](b []byte, kind, payloadType string) (*dsse.Envelope, *T, error) {
	env, err := parseReply(b)
	if err != nil {
		return nil, nil, err
	}
	if env.PayloadType != payloadType {
		return nil, nil, &ReplyError{Kind: kind, Reason: "payload type " + env.PayloadType}
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, nil, &ReplyError{Kind: kind, Reason: "json", Err: err}
	}
	if canon, err := P(&v).marshal(); err != nil || !bytes.Equal(canon, env.Payload) {
		return nil, nil, &ReplyError{Kind: kind, Reason: "not canonical JSON"}
	}
	if err := P(&v).check(); err != nil {
		return nil, nil, &ReplyError{Kind: kind, Reason: "content", Err: err}
	}
	return env, &v, nil
}

// verifyReceipt checks a receipt with archivesig.VerifyReceipt; keyID ""
// tries the key ids the envelope names (the signature must still verify
// under pub).
func verifyReceipt(b []byte, keyID string, pub ed25519.PublicKey) (*archivesig.Receipt, error) {
	env, err := parseReply(b)
	if err != nil {
		return nil, err
	}
	return verifyReceiptEnvelope(env, keyID, pub)
}

// verifyReceiptEnvelope is verifyReceipt of a reply parsed already
// (parseReply).
func verifyReceiptEnvelope(env *dsse.Envelope, keyID string, pub ed25519.PublicKey) (*archivesig.Receipt, error) {
	r, err := archivesig.ReceiptOf(env)
	if err != nil {
		return nil, &ReplyError{Kind: "receipt", Reason: "verify", Err: err}
	}
	if err := verifyEnvelope(env, keyID, pub); err != nil {
		return nil, &ReplyError{Kind: "receipt", Reason: "verify", Err: err}
	}
	return r, nil
}

func verifyEnvelope(env *dsse.Envelope, keyID string, pub ed25519.PublicKey) error {
	if keyID != "" {
		return env.VerifyEd25519(keyID, pub)
	}
	var err error
	for _, s := range env.Signatures {
		if err = env.VerifyEd25519(s.KeyID, pub); err == nil {
			return nil
		}
	}
	if err == nil {
		err = fmt.Errorf("sync: no signature")
	}
	return err
}

func parseReply(b []byte) (*dsse.Envelope, error) {
	if len(b) > archivesig.MaxReceiptSize {
		return nil, &ReplyError{Kind: "reply", Reason: fmt.Sprintf("%d bytes", len(b))}
	}
	env, err := dsse.ParseEnvelope(b)
	if err != nil {
		return nil, &ReplyError{Kind: "reply", Reason: "envelope", Err: err}
	}
	return env, nil
}

// Topic helpers (docs/formats.md).
const (
	topicRoot   = "edgeseal/v1/"
	AlertsTopic = "edgeseal/v1/alerts"
)

// BundlesTopic is where a device publishes its bundles.
func BundlesTopic(site, device string) string { return topicRoot + site + "/" + device + "/bundles" }

// ReceiptsTopic is where the archive answers a device.
func ReceiptsTopic(site, device string) string { return topicRoot + site + "/" + device + "/receipts" }

// SharedBundlesFilter is the archive's shared subscription for group.
func SharedBundlesFilter(group string) string {
	return "$share/" + group + "/" + topicRoot + "+/+/bundles"
}

// parseBundlesTopic returns site and device of edgeseal/v1/<site>/<device>/bundles.
func parseBundlesTopic(topic string) (site, device string, ok bool) {
	rest, ok := strings.CutPrefix(topic, topicRoot)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "bundles" || wire.CheckDevice(parts[0]+"/"+parts[1]) != nil {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// GapCheck is the check a rejection names when the bundle does not start
// where the last one the archive accepted from the device ended (the
// archive's archive.CheckGap is this name).
const GapCheck = "archive.gap"

// HeldCheck is the check a rejection names when the archive answered the
// bundle before the device's previous one was committed (a replica may
// still be committing it): nothing is wrong with the bundle, and the
// publisher sends it again as it does after a gap (the archive's
// archive.CheckHeld is this name).
const HeldCheck = "archive.held"

// resendSoon reports whether a rejection's checks mean "an earlier
// bundle first": a gap or a held bundle.
func resendSoon(checks []string) bool {
	return slices.Contains(checks, GapCheck) || slices.Contains(checks, HeldCheck)
}
