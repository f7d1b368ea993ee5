package sync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// laneRig is a Subscriber with an Admit whose behaviour is chosen per
// device, and the agents (Publishers with in-memory outboxes) that send to
// it through a real Mosquitto.
type laneRig struct {
	t    *testing.T
	b    *mqtttest.Broker
	keys *archiveKeys
	s    *Subscriber

	mu       gosync.Mutex
	admitted map[string][]string // device -> ids, in Admit order
	answered map[string][]string // device -> ids, in the order their waits returned
	inAdmit  map[string]bool     // device -> an Admit of it is running
	running  int                 // Admits running at once
	peak     int                 // the most at once
	overlap  []string            // devices with two Admits at once (must stay empty)
	events   []string            // "admit <device>", "answer <device>", in order
}

// laneBehaviour is what the rig's Admit does for one delivery: block
// in Admit until admitGate is closed, and let the answer be ready once
// answerGate is closed (nil: at once).
type laneBehaviour struct {
	admitGate, answerGate <-chan struct{}
	admitDelay, ansDelay  time.Duration
}

func newLaneRig(t *testing.T, o SubscriberOptions, behave func(d Delivery) laneBehaviour) *laneRig {
	r := &laneRig{t: t, b: mqtttest.Start(t, nil), keys: newArchiveKeys(t),
		admitted: map[string][]string{}, answered: map[string][]string{}, inAdmit: map[string]bool{}}
	o.Broker, o.ClientID, o.Logger = r.b.URL, "archive-lanes", testLogger(t)
	o.BackoffMin, o.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	o.Admit = func(ctx context.Context, d Delivery) func(context.Context) ([]byte, error) {
		dev := d.Site + "/" + d.Device
		bh := behave(d)
		r.mu.Lock()
		if r.inAdmit[dev] {
			r.overlap = append(r.overlap, dev)
		}
		r.inAdmit[dev] = true
		r.running++
		r.peak = max(r.peak, r.running)
		r.admitted[dev] = append(r.admitted[dev], d.ID)
		r.events = append(r.events, "admit "+dev)
		r.mu.Unlock()
		if bh.admitGate != nil {
			select {
			case <-bh.admitGate:
			case <-ctx.Done():
			}
		}
		time.Sleep(bh.admitDelay)
		r.mu.Lock()
		r.inAdmit[dev] = false
		r.running--
		r.mu.Unlock()
		ready := time.After(bh.ansDelay)
		return func(ctx context.Context) ([]byte, error) {
			if bh.answerGate != nil {
				select {
				case <-bh.answerGate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			select {
			case <-ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			r.mu.Lock()
			r.answered[dev] = append(r.answered[dev], d.ID)
			r.events = append(r.events, "answer "+dev)
			r.mu.Unlock()
			return r.keys.receipt(t, d.Digest, dev), nil
		}
	}
	s, err := NewSubscriber(o)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	run(t, "subscriber", s.Start)
	waitFor(t, "subscriber connected", 10*time.Second, func() bool { return s.Stats().Connected })
	return r
}

// agent is one device's publisher and outbox.
type laneAgent struct {
	device    string
	ob        *memOutbox
	p         *Publisher
	want      []string
	mu        gosync.Mutex
	receipted []string
}

// agent starts a device's publisher with n bundles in its outbox.
func (r *laneRig) agent(device string, n int) *laneAgent {
	a := &laneAgent{device: device, ob: newMemOutbox()}
	for i := range n {
		a.ob.put(entryID(i), bundleBytes(fmt.Sprint(device, i), 2000))
		a.want = append(a.want, entryID(i))
	}
	o := pubOptions(r.b.URL, device, a.ob, r.keys)
	o.Window = 4
	o.ResendAfter = time.Minute // only an answer out of order would resend
	o.OnReceipt = func(_ context.Context, id string, _ []byte) error {
		a.mu.Lock()
		a.receipted = append(a.receipted, id)
		a.mu.Unlock()
		return nil
	}
	a.p = startPublisher(r.t, o)
	return a
}

func (a *laneAgent) drained() bool {
	return a.ob.len() == 0 && a.p.Stats().Delivered == uint64(len(a.want))
}

func (r *laneRig) admittedOf(dev string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.admitted["site1/"+dev])
}

// TestLaneHeldDeviceHoldsOnlyItself: one device's bundle blocks in Admit
// (a replica holding it for its predecessor) and another's answer is not
// ready (a checkpoint to wait for); a third device's bundles are still
// admitted and answered, its outbox drains, while the other two wait;
// once released, they drain too, each in its own order.
func TestLaneHeldDeviceHoldsOnlyItself(t *testing.T) {
	holdAdmit, holdAnswer := make(chan struct{}), make(chan struct{})
	r := newLaneRig(t, SubscriberOptions{}, func(d Delivery) laneBehaviour {
		switch d.Device {
		case "held":
			return laneBehaviour{admitGate: holdAdmit}
		case "slow":
			return laneBehaviour{answerGate: holdAnswer}
		}
		return laneBehaviour{}
	})
	held, slow := r.agent("held", 3), r.agent("slow", 3)
	waitFor(t, "held and slow admitted", 20*time.Second, func() bool {
		return len(r.admittedOf("held")) >= 1 && len(r.admittedOf("slow")) >= 1
	})
	free := r.agent("free", 6)
	waitFor(t, "free device drained while the others wait", 20*time.Second, free.drained)
	if n := held.ob.len(); n != 3 {
		t.Errorf("held device: %d bundles left, want 3 (none answered while held)", n)
	}
	if n := slow.ob.len(); n != 3 {
		t.Errorf("slow device: %d bundles left, want 3 (none answered before its answer)", n)
	}
	if got := r.admittedOf("held"); len(got) != 1 {
		t.Errorf("held device: admitted %v while its first Admit blocks, want only the first", got)
	}
	close(holdAdmit)
	close(holdAnswer)
	waitFor(t, "held and slow drained once released", 20*time.Second, func() bool { return held.drained() && slow.drained() })
	for _, a := range []*laneAgent{free, held, slow} {
		a.mu.Lock()
		if !slices.Equal(a.receipted, a.want) {
			t.Errorf("%s: receipts in the order %v, want %v", a.device, a.receipted, a.want)
		}
		a.mu.Unlock()
		if st := a.p.Stats(); st.Resent != 0 {
			t.Errorf("%s: %d resent, want none", a.device, st.Resent)
		}
	}
	waitFor(t, "lanes ended", 10*time.Second, func() bool { return r.s.Stats().Lanes == 0 })
}

// TestLanesKeepEachDeviceOrder: many devices, many bundles, Admit and
// answers each taking a random time: every device's bundles are admitted
// one at a time in the order sent and answered in that order (the agents
// resend nothing), while different devices are admitted at once.
func TestLanesKeepEachDeviceOrder(t *testing.T) {
	const devices, bundles = 10, 12
	r := newLaneRig(t, SubscriberOptions{}, func(d Delivery) laneBehaviour {
		return laneBehaviour{admitDelay: time.Duration(rand.IntN(15)) * time.Millisecond,
			ansDelay: time.Duration(rand.IntN(60)) * time.Millisecond}
	})
	var agents []*laneAgent
	for i := range devices {
		agents = append(agents, r.agent(fmt.Sprintf("dev%02d", i), bundles))
	}
	waitFor(t, "every outbox drained", 60*time.Second, func() bool {
		for _, a := range agents {
			if !a.drained() {
				return false
			}
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range agents {
		dev := "site1/" + a.device
		if got := r.admitted[dev]; !slices.Equal(got, a.want) {
			t.Errorf("%s: admitted %v, want %v", dev, got, a.want)
		}
		if got := r.answered[dev]; !slices.Equal(got, a.want) {
			t.Errorf("%s: answers ready in the order %v, want %v", dev, got, a.want)
		}
		a.mu.Lock()
		if !slices.Equal(a.receipted, a.want) {
			t.Errorf("%s: receipts reached the agent in the order %v, want %v", dev, a.receipted, a.want)
		}
		a.mu.Unlock()
		if st := a.p.Stats(); st.Resent != 0 {
			t.Errorf("%s: %d resent, want none", dev, st.Resent)
		}
	}
	if len(r.overlap) != 0 {
		t.Errorf("a device admitted twice at once: %v", r.overlap)
	}
	if r.peak < 2 {
		t.Errorf("at most %d Admit at once: devices not admitted in parallel", r.peak)
	}
	if st := r.s.Stats(); st.Handled != devices*bundles || st.HandlerErrors != 0 {
		t.Errorf("subscriber %+v", st)
	}
	t.Logf("at most %d Admits at once", r.peak)
}

// TestLanesBounded: with MaxLanes 2 and two devices held in Admit, a
// third device's bundle is received but not admitted until one of the
// two has answered its last (its lane ends); it is admitted then.
func TestLanesBounded(t *testing.T) {
	gates := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	r := newLaneRig(t, SubscriberOptions{MaxLanes: 2}, func(d Delivery) laneBehaviour {
		return laneBehaviour{admitGate: gates[d.Device]} // nil for c: at once
	})
	a, b := r.agent("a", 1), r.agent("b", 1)
	waitFor(t, "a and b admitted", 20*time.Second, func() bool {
		return len(r.admittedOf("a")) == 1 && len(r.admittedOf("b")) == 1
	})
	c := r.agent("c", 1)
	waitFor(t, "c's bundle received", 20*time.Second, func() bool { return r.s.Stats().Assembler.Completed == 3 })
	// c's delivery waits on the receiving goroutine: give it the time it
	// would take to be admitted, were it not bounded.
	time.Sleep(300 * time.Millisecond)
	if got := r.admittedOf("c"); len(got) != 0 {
		t.Fatalf("c admitted %v with two lanes busy and MaxLanes 2", got)
	}
	if n := r.s.Stats().Lanes; n != 2 {
		t.Errorf("%d lanes, want 2", n)
	}
	close(gates["a"])
	waitFor(t, "a and c drained", 20*time.Second, func() bool { return a.drained() && c.drained() })
	r.mu.Lock()
	ia, ic := slices.Index(r.events, "answer site1/a"), slices.Index(r.events, "admit site1/c")
	events := slices.Clone(r.events)
	r.mu.Unlock()
	if ia < 0 || ic < ia {
		t.Errorf("events %v: c admitted before a's lane ended", events)
	}
	if b.ob.len() != 1 {
		t.Errorf("b answered while held")
	}
	close(gates["b"])
	waitFor(t, "b drained", 20*time.Second, b.drained)
	waitFor(t, "lanes ended", 10*time.Second, func() bool { return r.s.Stats().Lanes == 0 })
}
