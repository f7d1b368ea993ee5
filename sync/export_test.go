package sync

import (
	"context"
	"net"
	"testing"
	"time"
)

// Test seams for the external tests of this package (package sync_test).

// HoldAcks is holdAcks: a Dial that holds back the broker's PUBACKs
// until release.
func HoldAcks(t *testing.T, brokerURL string) (release func(), dial func(ctx context.Context) (net.Conn, error)) {
	h, dial := holdAcks(t, brokerURL)
	return h.release, dial
}

// TestOutbox is the in-memory Outbox of this package's tests.
type TestOutbox struct{ *memOutbox }

// NewTestOutbox returns an empty in-memory Outbox.
func NewTestOutbox() TestOutbox { return TestOutbox{newMemOutbox()} }

// Put adds an entry; Len counts the entries.
func (o TestOutbox) Put(id string, data []byte) { o.put(id, data) }
func (o TestOutbox) Len() int                   { return o.len() }

// SetAssemblerClock sets the clock of a.
func SetAssemblerClock(a *Assembler, now func() time.Time) { a.now = now }
