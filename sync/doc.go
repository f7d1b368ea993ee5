// Package sync delivers sealed bundles to the archive over MQTT and brings
// back receipts; it is the only package that imports paho.mqtt.golang.
//
// The agent side is the Publisher: it reads the journal's outbox in id
// order (an OutboxLister is listed once, then again only after a Wake, a
// tick or a new connection; delivered entries leave that listing), sends each bundle as chunk frames (EncodeChunks) on
// edgeseal/v1/<site>/<device>/bundles at QoS 1 with a persistent session,
// keeps at most Window bundles waiting for a receipt (DefaultWindow; halved
// while archive replicas answer bundles held, grown back by one a
// delivery), and deletes an outbox
// entry only after a receipt signed by the archive's Ed25519 key names the
// entry's SHA-256 (with PublisherOptions.ArchiveKeys, a key an
// ArchiveKeyring accepts: the archive's key rotations, learned from the
// announcements replies carry). A PUBACK is not delivery: whatever is not receipted is
// sent again after a reconnect or after ResendAfter, and at once when the
// archive answers a bundle sent after one still unanswered (that bundle or
// its reply was lost), so the archive must tolerate duplicates (it answers
// a repeat with the same receipt). Replies are handled off paho's
// delivery goroutine: the receipts that arrived together (a reply waits up
// to 100 ms for those of the other bundles in flight, at most half the
// window) are journaled with one OnReceipts call (OnParsedReceipts: as the
// publisher parsed and verified them, not parsed again) and their entries deleted together, and each
// reply is acknowledged to the broker only after that (a process that
// stops first gets it again from the broker).
//
// The archive side is the Subscriber: a subscription to
// edgeseal/v1/+/+/bundles (shared, $share/<group>/..., only when a Group
// is set: on a broker that authorizes SUBSCRIBE), an Assembler that joins frames
// into bundles and checks their digest (or, for replicas sharing a group,
// whose frames the broker deals among them, a FrameStore they share:
// SubscriberOptions.Frames), the Handler, and the Handler's reply
// published on the device's receipts topic (at most
// SubscriberOptions.MaxReplies waiting for the broker's confirmation; a
// reply past that is dropped, logged and counted, and the agent's resend
// brings the stored answer). A message is acknowledged only
// when the Handler has returned (with an Admitter: once its bundle is
// queued for admission in its device's lane; only the reply lets the
// agent drop a bundle). With an Admitter each device has a lane of its
// own (lanes.go): its bundles are admitted and answered in the order they
// arrived, while other devices' go on beside it.
//
// Enrollment: Enroll (one-shot, clean session) publishes a device's
// enrollment request on edgeseal/v1/<site>/<device>/enroll and waits for
// the archive's signed EnrollAck on .../enroll/reply (which may carry a
// credential challenge, answered by a second Enroll of the activation
// response on the same topic); a Subscriber with an
// EnrollHandler also takes edgeseal/v1/+/+/enroll (or its shared form) and
// publishes the handler's answer there.
//
// Device alerts: the Publisher also sends the agent's alarms (Alert, a
// DeviceAlert: canonical JSON, at most MaxDeviceAlert bytes) on
// edgeseal/v1/alerts/<site>/<device> at QoS 1, from a bounded in-memory
// queue that drops the oldest when full and never holds up the bundles; a
// Subscriber with a DeviceAlertHandler takes edgeseal/v1/alerts/+/+ and
// hands on each alert that parses and names its topic's device.
//
// Frame format (docs/formats.md):
//
//	"ESB1" | uint32 BE header length | header JSON | chunk bytes
//	header: {"bundle":"sha256:<hex>","count":n,"id":"<outbox id>","index":i,"size":<bytes>}
//
// The header is canonical JSON (RFC 8785: keys sorted, no spaces).
package sync
