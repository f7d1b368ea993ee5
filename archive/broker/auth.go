package broker

import (
	"bytes"
	"crypto/tls"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authHook authenticates every client and applies the ACL (allowed):
// a client of the TLS listener is the common name of its certificate,
// which the listener verified against the client CA; the archive's own
// connection (the internal listener) is ArchiveIdentity. The identity
// becomes the client's username, and its client id is pinned to it:
// "<identity>|<the id it asked for>", so that no client can take over the
// session of another identity.
type authHook struct {
	mqtt.HookBase
	internal string // listener id of DialInternal's connections
	log      *slog.Logger
}

func (h *authHook) ID() string { return "edgeseal-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// identity returns who cl is, or "" when it is nobody the broker knows.
func (h *authHook) identity(cl *mqtt.Client) string {
	if cl.Net.Listener == h.internal {
		return ArchiveIdentity
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// clientIDSep joins identity and the client's own id; it cannot occur in
// an identity.
const clientIDSep = "|"

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id := h.identity(cl)
	if id == "" || !validIdentity(id) {
		h.log.Warn("broker: client refused: no valid identity (a client certificate from the client CA, named as the ACL expects)",
			"remote", cl.Net.Remote, "identity", id)
		return false
	}
	cl.Properties.Username = []byte(id)
	cl.ID = id + clientIDSep + cl.ID
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	ok := allowed(string(cl.Properties.Username), topic, write)
	if !ok {
		h.log.Warn("broker: refused by the ACL", "identity", string(cl.Properties.Username), "topic", topic, "write", write)
	}
	return ok
}
