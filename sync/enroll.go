package sync

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// EnrollAckPayloadType is the DSSE payload type of the archive's signed
// answer to an enrollment request.
const EnrollAckPayloadType = "application/vnd.edgeseal.enroll-ack+json"

// MaxEnrollMessage bounds an enrollment request on MQTT (the archive's
// parser has its own, smaller bound).
const MaxEnrollMessage = 256 << 10

// Enrollment states an EnrollAck reports.
const (
	// EnrollPending: stored, waiting for an operator's approval (edgeseal
	// archive devices approve). Nothing from the key is accepted before.
	EnrollPending = "pending"
	// EnrollApproved: this exact trust is already the device's approved one.
	EnrollApproved = "approved"
	// EnrollRefused: not stored (a malformed request, a topic naming
	// another device, a revoked key); Reason says why.
	EnrollRefused = "refused"
)

// EnrollAck is the archive's signed answer to an enrollment request: the
// device, the SHA-256 of the request message ("sha256:<hex>"), the
// request's signing key id, the state, a reason, and the time (RFC 3339
// UTC). It is a DSSE envelope signed by the archive's Ed25519 key, its
// payload canonical JSON.
type EnrollAck struct {
	Device  string `json:"device"`
	Request string `json:"request"`
	KeyID   string `json:"keyId"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Time    string `json:"time"`
	// Challenge, for a pending request whose credential is not yet
	// activated, is the archive's credential challenge: an
	// archive.Challenge JSON object as a string, at most MaxChallenge
	// bytes. The device answers it with TPM2_ActivateCredential.
	Challenge string `json:"challenge,omitempty"`
}

// MaxChallenge bounds EnrollAck.Challenge.
const MaxChallenge = 8 << 10

func (a *EnrollAck) check() error {
	if err := wire.CheckDevice(a.Device); err != nil {
		return err
	}
	if _, err := wire.ParseHash(a.Request); err != nil {
		return err
	}
	switch a.Status {
	case EnrollPending, EnrollApproved, EnrollRefused:
	default:
		return fmt.Errorf("sync: enrollment answer: status %.20q", a.Status)
	}
	if len(a.KeyID) > 256 || len(a.Reason) > 4096 || len(a.Time) > 64 {
		return fmt.Errorf("sync: enrollment answer: field too long")
	}
	if a.Status == EnrollRefused && a.Reason == "" {
		return fmt.Errorf("sync: enrollment answer: refused without a reason")
	}
	if a.Challenge != "" {
		var obj map[string]json.RawMessage
		if len(a.Challenge) > MaxChallenge || json.Unmarshal([]byte(a.Challenge), &obj) != nil || obj == nil || a.Status != EnrollPending {
			return fmt.Errorf("sync: enrollment answer: challenge not a JSON object of at most %d bytes in a pending answer", MaxChallenge)
		}
	}
	return nil
}

func (a *EnrollAck) marshal() ([]byte, error) {
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("sync: enrollment answer: %w", err)
	}
	return jcs.Transform(raw)
}

// SignEnrollAck signs a with the archive's Ed25519 key as a DSSE envelope.
func SignEnrollAck(a *EnrollAck, keyID string, key crypto.Signer) ([]byte, error) {
	return signReply(a, EnrollAckPayloadType, keyID, key)
}

// VerifyEnrollAck parses a signed enrollment answer strictly (canonical
// JSON, known fields) and checks its signature (keyID "" accepts any key
// id whose signature verifies under pub).
func VerifyEnrollAck(b []byte, keyID string, pub ed25519.PublicKey) (*EnrollAck, error) {
	return verifyReply[EnrollAck](b, "enrollment answer", EnrollAckPayloadType, keyID, pub)
}

// ErrNoAnswer: the archive did not answer an enrollment request in time.
var ErrNoAnswer = errors.New("sync: no answer from the archive in time")

// EnrollTopic is where a device publishes its enrollment request.
func EnrollTopic(site, device string) string { return topicRoot + site + "/" + device + "/enroll" }

// EnrollReplyTopic is where the archive answers an enrollment request.
func EnrollReplyTopic(site, device string) string { return EnrollTopic(site, device) + "/reply" }

// SharedEnrollFilter is the archive's shared subscription to enrollment
// requests for group.
func SharedEnrollFilter(group string) string {
	return "$share/" + group + "/" + topicRoot + "+/+/enroll"
}

// parseEnrollTopic returns site and device of edgeseal/v1/<site>/<device>/enroll.
func parseEnrollTopic(topic string) (site, device string, ok bool) {
	rest, ok := strings.CutPrefix(topic, topicRoot)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "enroll" || wire.CheckDevice(parts[0]+"/"+parts[1]) != nil {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// EnrollOptions configure Enroll.
type EnrollOptions struct {
	Broker   string      // tcp:// or ssl://, required
	ClientID string      // default "edgeseal-<site>-<device>-enroll" (not the agent's: both may run)
	Site     string      // required
	Device   string      // required
	TLS      *tls.Config // for ssl://: roots and the device's client certificate

	ArchiveKey   ed25519.PublicKey // required: the answer must verify against it
	ArchiveKeyID string            // "" accepts any key id whose signature verifies

	// Request is the enrollment request (archive.EnrollRequest JSON),
	// required, at most MaxEnrollMessage bytes.
	Request []byte

	Timeout        time.Duration // for the archive's answer after the PUBACK, default 30 s
	ConnectTimeout time.Duration // default 10 s
	Logger         *slog.Logger
}

// Enroll publishes an enrollment request on the device's enroll topic at
// QoS 1 and waits for the archive's signed answer on EnrollReplyTopic: one
// that verifies against the archive key, names this device and the SHA-256
// of this request (answers to earlier requests are skipped). It returns
// the answer and its signed bytes. An answer with a Challenge is
// answered by the caller with a second Enroll whose Request is the
// activation response. The connection has a clean session: the
// command is one-shot and a stale answer is of no use. Without an answer
// in Timeout it fails with a *PublishError wrapping ErrNoAnswer; the
// broker has acknowledged the request by then, so the archive may still
// record it later, and running Enroll again is harmless.
func Enroll(ctx context.Context, opts EnrollOptions) (*EnrollAck, []byte, error) {
	if err := wire.CheckDevice(opts.Site + "/" + opts.Device); err != nil {
		return nil, nil, &ConfigError{Field: "Site/Device", Reason: err.Error()}
	}
	tc, err := checkBroker(opts.Broker, opts.TLS)
	if err != nil {
		return nil, nil, err
	}
	if len(opts.ArchiveKey) != ed25519.PublicKeySize {
		return nil, nil, &ConfigError{Field: "ArchiveKey", Reason: "required Ed25519 public key"}
	}
	if len(opts.Request) == 0 || len(opts.Request) > MaxEnrollMessage {
		return nil, nil, &ConfigError{Field: "Request", Reason: fmt.Sprintf("%d bytes (want 1..%d)", len(opts.Request), MaxEnrollMessage)}
	}
	if opts.ClientID == "" {
		opts.ClientID = "edgeseal-" + opts.Site + "-" + opts.Device + "-enroll"
	}
	setDur(&opts.Timeout, 30*time.Second)
	setDur(&opts.ConnectTimeout, 10*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	device := opts.Site + "/" + opts.Device
	want := wire.FormatHash(sha256.Sum256(opts.Request))
	replyTopic := EnrollReplyTopic(opts.Site, opts.Device)
	type answer struct {
		ack *EnrollAck
		raw []byte
	}
	answers := make(chan answer, 1)
	onMessage := func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() != replyTopic {
			return
		}
		ack, err := VerifyEnrollAck(m.Payload(), opts.ArchiveKeyID, opts.ArchiveKey)
		if err != nil {
			opts.Logger.Warn("sync: enrollment answer ignored", "err", err)
			return
		}
		if ack.Device != device || ack.Request != want {
			opts.Logger.Debug("sync: answer to another enrollment request skipped", "device", ack.Device, "request", ack.Request)
			return
		}
		select {
		case answers <- answer{ack, bytes.Clone(m.Payload())}:
		default:
		}
	}
	l, err := dial(ctx, dialConfig{broker: opts.Broker, clientID: opts.ClientID, tls: tc, clean: true,
		connectTimeout: opts.ConnectTimeout, onMessage: onMessage})
	if err != nil {
		return nil, nil, err
	}
	defer l.c.Disconnect(250)
	if err := waitToken(ctx, l.c.Subscribe(replyTopic, 1, nil), l, opts.ConnectTimeout); err != nil {
		return nil, nil, &PublishError{Topic: replyTopic, Err: err}
	}
	topic := EnrollTopic(opts.Site, opts.Device)
	if err := waitToken(ctx, l.c.Publish(topic, 1, false, opts.Request), l, opts.ConnectTimeout); err != nil {
		return nil, nil, &PublishError{Topic: topic, Err: err}
	}
	opts.Logger.Info("sync: enrollment request published; waiting for the archive", "topic", topic, "request", want)
	t := time.NewTimer(opts.Timeout)
	defer t.Stop()
	select {
	case a := <-answers:
		return a.ack, a.raw, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-l.lost:
		return nil, nil, &ConnectError{Broker: opts.Broker, Err: l.cause()}
	case <-t.C:
		return nil, nil, &PublishError{Topic: replyTopic, Err: ErrNoAnswer}
	}
}
