package agent

import (
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

// The kinds of the alarms the core raises besides the governance.alert
// kinds (custody.AlertSchemaChanged, ...), which are alarms too. They are
// the device alert kinds of docs/formats.md.
const (
	// AlarmPolicyRefused: a policy reload was refused; the policy in
	// force stays (RefusePolicy).
	AlarmPolicyRefused = "policy.refused"
	// AlarmOutboxQuota: the outbox went over its quota (CheckOutbox).
	AlarmOutboxQuota = "outbox.quota"
	// AlarmPCRAuthorization: an operator's PCR authorization was not
	// applied (pcrAuthCheck).
	AlarmPCRAuthorization = "pcr.authorization"
)

// AlarmKinds are every kind an Alarm may carry.
var AlarmKinds = []string{custody.AlertSchemaChanged, custody.AlertDestinationNew, custody.AlertSignerUnknown, custody.AlertRetentionShort,
	AlarmPolicyRefused, AlarmOutboxQuota, AlarmPCRAuthorization, AlarmArchiveInconsistent}

// Alarm is an alarm the core raised, already logged (and journaled, for a
// governance alert), as it hands it to its AlarmSink.
type Alarm struct {
	Kind string
	Time time.Time
	// Seq is the journal sequence number of the record that journaled
	// the alarm (a governance.alert); -1 when there is none.
	Seq    int64
	Detail string
}

// AlarmSink takes the core's alarms to the outside world (the daemon
// publishes them over its MQTT link, sync.Publisher.Alert). It is called
// on the goroutine that raised the alarm and must not block.
type AlarmSink func(Alarm)

// maxEarlyAlarms bounds the alarms kept while no sink is set (those the
// start raises before the MQTT link is built); past it the oldest go.
const maxEarlyAlarms = 16

// alarmState is the sink and the alarms raised before it was set.
type alarmState struct {
	mu    sync.Mutex
	sink  AlarmSink
	early []Alarm
}

// SetAlarmSink sets where the core's alarms go and hands it those raised
// since the start (at most maxEarlyAlarms, oldest first).
func (c *Core) SetAlarmSink(fn AlarmSink) {
	c.alarms.mu.Lock()
	early := c.alarms.early
	c.alarms.sink, c.alarms.early = fn, nil
	c.alarms.mu.Unlock()
	if fn == nil {
		return
	}
	for _, a := range early {
		fn(a)
	}
}

// alarm hands an alarm to the sink, or keeps it until one is set.
func (c *Core) alarm(kind string, seq int64, detail string) {
	a := Alarm{Kind: kind, Time: c.opts.Now().UTC(), Seq: seq, Detail: detail}
	c.alarms.mu.Lock()
	sink := c.alarms.sink
	if sink == nil {
		c.alarms.early = append(c.alarms.early, a)
		if n := len(c.alarms.early); n > maxEarlyAlarms {
			c.alarms.early = c.alarms.early[n-maxEarlyAlarms:]
		}
	}
	c.alarms.mu.Unlock()
	if sink != nil {
		sink(a)
	}
}
