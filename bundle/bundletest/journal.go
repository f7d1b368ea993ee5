package bundletest

import (
	"time"

	"github.com/edgeseal/edgeseal/bundle"
)

// queued is a record Journal queued for the next bundle.
type queued struct {
	typ   string
	actor bundle.Actor
	body  []byte
}

// Journal queues a record of type typ with a body (JSON object bytes) to
// be journaled first in the next bundle Next seals, before its n records.
func (c *Chain) Journal(typ string, actor bundle.Actor, body []byte) {
	c.queued = append(c.queued, queued{typ: typ, actor: actor, body: body})
}

// journalQueued appends the queued records to the log and returns them.
func (c *Chain) journalQueued() ([][]byte, error) {
	var out [][]byte
	for _, q := range c.queued {
		c.clock = c.clock.Add(1500 * time.Microsecond)
		r := bundle.Record{Seq: uint64(len(c.log.records)), Type: q.typ, Time: c.clock, Device: c.DeviceName(), Prev: c.log.last(), Actor: q.actor, Body: q.body}
		b, err := r.Marshal()
		if err != nil {
			return nil, err
		}
		c.log.append(b)
		out = append(out, b)
	}
	c.queued = nil
	return out, nil
}
