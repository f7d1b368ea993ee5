package bundletest

import "github.com/edgeseal/edgeseal/bundle"

// Journal queues a record of type typ with a body (JSON object bytes) to
// lead the next bundle Next seals (it counts among its n records).
func (c *Chain) Journal(typ string, actor bundle.Actor, body []byte) {
	c.queued = append(c.queued, func(r *bundle.Record) {
		r.Type, r.Actor, r.Body = typ, actor, body
	})
}
