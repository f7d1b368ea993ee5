package bundletest

import (
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// Journal queues a record of type typ with a body (JSON object bytes) to
// lead the next bundle Next seals (it counts among its n records).
func (c *Chain) Journal(typ string, actor custody.Actor, body []byte) {
	c.queued = append(c.queued, func(r *custody.Record) {
		r.Type, r.Actor, r.Body = typ, actor, body
	})
}
