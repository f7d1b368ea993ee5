package archive

import (
	"sync"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Event types of Subscribe (docs/archive-api.md "Events").
const (
	EventBundleAccepted = "bundle.accepted"
	EventExportIndexed  = "export.indexed"
	EventAlert          = "alert"
	EventAccess         = "access"
)

// Event is something that happened at the archive, for live views.
type Event struct {
	Type string // EventBundleAccepted, ...
	Data any    // marshalled to JSON as the event's data
}

// BundleAcceptedEvent is the data of EventBundleAccepted, sent once its
// records are in the export index.
type BundleAcceptedEvent struct {
	Bundle   string `json:"bundle"`
	Device   string `json:"device"`
	LogIndex uint64 `json:"logIndex"`
	Exports  int    `json:"exports"`
	Refused  int    `json:"refused"`
	Time     string `json:"time"`
}

// ExportIndexedEvent is the data of EventExportIndexed.
type ExportIndexedEvent struct {
	Device    string `json:"device"`
	Export    string `json:"export"`
	Status    string `json:"status"`
	RefusedBy string `json:"refusedBy,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Bundle    string `json:"bundle"`
	Time      string `json:"time"`
}

// subscriberBuffer is how far a subscriber may fall behind before it is
// dropped (its channel closed).
const subscriberBuffer = 256

// eventHub fans events out to subscribers without ever blocking the
// archive: a subscriber whose buffer is full is dropped.
type eventHub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Subscribe returns a channel of the archive's events from now on and a
// cancel function. The channel is closed by cancel, by Close, or when
// the subscriber falls subscriberBuffer events behind.
func (a *Archive) Subscribe() (<-chan Event, func()) {
	h := &a.hub
	ch := make(chan Event, subscriberBuffer)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan Event]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if _, ok := h.subs[ch]; ok {
				delete(h.subs, ch)
				close(ch)
			}
		})
	}
}

// Publish sends an event to every subscriber (the API publishes access
// events through it).
func (a *Archive) Publish(ev Event) {
	h := &a.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// closeHub closes every subscriber.
func (a *Archive) closeHub() {
	h := &a.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

func (a *Archive) publishIndexed(ents []*ExportEntry) {
	for _, e := range ents {
		a.Publish(Event{Type: EventExportIndexed, Data: ExportIndexedEvent{
			Device: e.Device, Export: e.Export, Status: e.Status, RefusedBy: e.RefusedBy, Reason: e.Reason, Bundle: e.Bundle, Time: e.Time,
		}})
	}
}

// publishAccepted announces a bundle the index took, with its records
// counted by type (tl).
func (a *Archive) publishAccepted(ref bundleRef, device string, tl *recTally) {
	ev := BundleAcceptedEvent{Bundle: ref.digest, Device: device, LogIndex: ref.logIndex, Time: ref.acceptedAt,
		Exports: int(tl.typeExports), Refused: int(tl.typeRef)}
	if ev.Time == "" {
		ev.Time = wire.FormatTime(a.now())
	}
	a.Publish(Event{Type: EventBundleAccepted, Data: ev})
}
