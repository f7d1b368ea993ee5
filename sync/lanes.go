package sync

import (
	"context"
	gosync "sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Lanes. With an Admitter, each device (site/device) that has deliveries
// received and not yet answered has a lane of its own: one goroutine that
// admits its deliveries one at a time in arrival order, and one that
// waits their answers and publishes them in the same order. The only
// order kept is a device's: one device's bundle held in Admit (an archive
// replica waiting for another replica to commit its predecessor) or
// waiting for its answer holds up that device's later bundles and no other
// device's. A lane is made on a device's first delivery and ends once it
// has answered all it was given. The lanes at once are bounded
// (SubscriberOptions.MaxLanes), and so are the deliveries received and not
// answered in all lanes (MaxPending, MaxPendingBytes: each holds its
// bundle): past a bound, the delivery waits on paho's receiving goroutine
// until a lane ends or an answer frees room, and the broker holds the next
// messages (back-pressure, as for a Handler).

// DefaultMaxLanes is SubscriberOptions.MaxLanes's default.
const DefaultMaxLanes = 256

// DefaultMaxPendingBytes is SubscriberOptions.MaxPendingBytes's default.
const DefaultMaxPendingBytes = 256 << 20

// laneQueue bounds a lane's deliveries waiting for Admit, and again those
// waiting for their answer (an agent keeps at most its window of bundles
// unanswered); past it the receiving goroutine waits.
const laneQueue = 16

// admitted is a delivery on its way through a lane.
type admitted struct {
	c    mqtt.Client
	d    Delivery
	wait func(context.Context) ([]byte, error)
}

// lane is one device's.
type lane struct {
	key     string
	n       int            // deliveries given and not yet answered (lanes.mu)
	admits  chan *admitted // awaiting Admit, in arrival order
	answers chan *admitted // awaiting their answer, in arrival order
}

// lanes dispatches deliveries to their device's lane, within the bounds;
// one per Start.
type lanes struct {
	s        *Subscriber
	run, ctx context.Context // run ends the lanes; ctx is Admit's and wait's
	wg       gosync.WaitGroup

	mu      gosync.Mutex
	by      map[string]*lane
	pending int   // deliveries given to lanes and not yet answered
	bytes   int64 // their bundles' bytes
	// freed is closed (and replaced) whenever a lane ends or an answer
	// frees room.
	freed chan struct{}
}

func newLanes(s *Subscriber, run, ctx context.Context) *lanes {
	return &lanes{s: s, run: run, ctx: ctx, by: map[string]*lane{}, freed: make(chan struct{})}
}

// dispatch gives a delivery to its device's lane, making the lane when
// the device has none; it waits while the bounds are reached (room is
// always made for one delivery, however large). It returns false when
// the lanes ended first.
func (ls *lanes) dispatch(a *admitted) bool {
	key := a.d.Site + "/" + a.d.Device
	size := int64(len(a.d.Bundle))
	o := &ls.s.opts
	for {
		ls.mu.Lock()
		l := ls.by[key]
		roomy := ls.pending == 0 || (ls.pending < o.MaxPending && ls.bytes+size <= o.MaxPendingBytes)
		if roomy && (l != nil || len(ls.by) < o.MaxLanes) {
			if l == nil {
				l = &lane{key: key, admits: make(chan *admitted, laneQueue), answers: make(chan *admitted, laneQueue)}
				ls.by[key] = l
				ls.wg.Add(2)
				go ls.admitLoop(l)
				go ls.answerLoop(l)
			}
			l.n++
			ls.pending++
			ls.bytes += size
			ls.mu.Unlock()
			// l.n counts a, so the lane cannot end before a is answered.
			select {
			case l.admits <- a:
				return true
			case <-ls.run.Done():
				return false
			}
		}
		freed := ls.freed
		ls.mu.Unlock()
		select {
		case <-freed:
		case <-ls.run.Done():
			return false
		}
	}
}

// done takes an answered delivery off its lane, ending the lane when it
// was its last.
func (ls *lanes) done(l *lane, a *admitted) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.pending--
	ls.bytes -= int64(len(a.d.Bundle))
	if l.n--; l.n == 0 {
		delete(ls.by, l.key)
		close(l.admits) // nothing more is sent: the lane is no longer in by
	}
	close(ls.freed)
	ls.freed = make(chan struct{})
}

// count is the lanes at the moment.
func (ls *lanes) count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.by)
}

// admitLoop admits a lane's deliveries one at a time, in arrival order,
// and queues them for their answers.
func (ls *lanes) admitLoop(l *lane) {
	defer ls.wg.Done()
	defer close(l.answers)
	for {
		select {
		case a, ok := <-l.admits:
			if !ok {
				return
			}
			a.wait = ls.s.opts.Admit(ls.ctx, a.d)
			select {
			case l.answers <- a:
			case <-ls.run.Done():
				return
			}
		case <-ls.run.Done():
			return
		}
	}
}

// answerLoop publishes a lane's answers one at a time, in arrival order
// (the agent reads a device's answers in the order it sent: an answer that
// overtook an earlier one would make it send that one again).
func (ls *lanes) answerLoop(l *lane) {
	defer ls.wg.Done()
	for {
		select {
		case a, ok := <-l.answers:
			if !ok {
				return
			}
			reply, err := a.wait(ls.ctx)
			if ls.run.Err() != nil || ls.ctx.Err() != nil {
				return // stopping: no answer, the agent sends again
			}
			ls.s.answer(ls.ctx, a.c, a.d, reply, err)
			ls.done(l, a)
		case <-ls.run.Done():
			return
		}
	}
}
