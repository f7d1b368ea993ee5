package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// rejection is one refused attempt to journal.
type rejection struct {
	id    string
	req   IngestRequest
	cause error
}

// journalRejections journals refused attempts as export.rejected records
// in one commit (a refusal key another request took meanwhile is given up
// and the refusal journaled without it) and returns one *RejectedError
// (or per-entry error) per rejection, and the journal size after them.
func (c *Core) journalRejections(ctx context.Context, actor custody.Actor, rejs []rejection, taken map[string]bool) ([]error, uint64, error) {
	out := make([]error, len(rejs))
	keyed := true
	todo := make([]int, len(rejs))
	for k := range todo {
		todo[k] = k
	}
	var last uint64
	for len(todo) > 0 {
		es := make([]store.Entry, len(todo))
		for k, r := range todo {
			var key []byte
			if keyed {
				key = c.refusedKey(c.j, actor, rejs[r].id, taken)
			}
			es[k] = c.rejectEntry(actor, rejs[r].id, rejs[r].req, rejs[r].cause, key)
		}
		res, perEntry, err := c.appendSplit(ctx, es)
		if err != nil {
			return nil, 0, err
		}
		var again []int
		for k, r := range todo {
			var eerr error
			if perEntry != nil {
				eerr = perEntry[k]
			}
			var dup *store.DuplicateError
			switch {
			case eerr != nil && errors.As(eerr, &dup) && keyed:
				again = append(again, r)
			case eerr != nil:
				out[r] = fmt.Errorf("agent: journal rejection: %w", eerr)
			default:
				c.cache.addFile(res[k], nil, noPayloadFile)
				out[r] = &RejectedError{ExportID: rejs[r].id, Seq: res[k].Seq, Leaf: wire.FormatHash(res[k].Leaf), Err: rejs[r].cause}
				c.obs.ExportRejected(RejectReason(rejs[r].cause))
				last = max(last, res[k].Size)
			}
		}
		todo, keyed = again, false
	}
	return out, last, nil
}
