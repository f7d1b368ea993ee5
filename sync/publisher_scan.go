package sync

import (
	"context"
	"errors"
	"slices"
)

// errStopScan ends an outbox scan early once the window is full.
var errStopScan = errors.New("sync: window full")

type entry struct {
	id     string
	data   []byte
	digest [32]byte // SHA-256 of data, when hashed
	hashed bool
	lazy   bool // not read yet: send reads it (OutboxLister)
}

// scan returns the next entries to send, in id order, at most the free
// window. With an OutboxLister it only lists them: send reads each bundle
// just before sending it, into the sender's buffer. The ids listed are
// kept (p.listed) and the outbox is listed again only when relist says
// so: a drain's pumps (one a receipt batch) then take the next ids from
// memory instead of reading the outbox directory each time, which costs
// as much as the directory holds entries.
func (p *Publisher) scan(ctx context.Context) ([]entry, error) {
	if l, ok := p.opts.Outbox.(OutboxLister); ok {
		if err := p.list(ctx, l); err != nil {
			return nil, err
		}
		return p.scanListed()
	}
	p.mu.Lock()
	busy := make(map[string]bool, len(p.inflight)+len(p.held))
	for id := range p.inflight {
		busy[id] = true
	}
	for id := range p.held {
		busy[id] = true
	}
	free := p.window - len(p.inflight)
	p.mu.Unlock()
	var out []entry
	seen := 0
	err := p.opts.Outbox.Outbox(ctx, func(id string, data []byte) error {
		seen++
		if busy[id] {
			return nil
		}
		if free <= 0 {
			return errStopScan
		}
		if !ValidID(id) {
			p.hold(id)
			return nil
		}
		out = append(out, entry{id: id, data: data})
		free--
		return nil
	})
	return p.scanned(out, seen, err)
}

// list lists the outbox into p.listed when relist is set or nothing was
// listed yet.
func (p *Publisher) list(ctx context.Context, l OutboxLister) error {
	p.mu.Lock()
	have := p.listed != nil
	p.mu.Unlock()
	if have && !p.relist.Swap(false) {
		return nil
	}
	p.relist.Store(false) // a Wake from now on lists again
	ids := []string{}
	if err := l.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		p.relist.Store(true)
		return err
	}
	slices.Sort(ids) // in id order already (OutboxLister); delivered below keeps it
	p.mu.Lock()
	p.listed = ids
	p.mu.Unlock()
	return nil
}

// scanListed takes the next entries to send from p.listed: those neither
// in flight nor held, at most the free window.
func (p *Publisher) scanListed() ([]entry, error) {
	p.mu.Lock()
	free := p.window - len(p.inflight)
	var ids []string
	seen, complete := 0, true
	for _, id := range p.listed {
		seen++
		if _, busy := p.inflight[id]; busy {
			continue
		}
		if _, busy := p.held[id]; busy {
			continue
		}
		if len(ids) >= free {
			complete = false
			break
		}
		ids = append(ids, id)
	}
	p.mu.Unlock()
	var out []entry
	for _, id := range ids {
		if !ValidID(id) {
			p.hold(id)
			continue
		}
		out = append(out, entry{id: id, lazy: true})
	}
	var err error
	if !complete {
		err = errStopScan
	}
	return p.scanned(out, seen, err)
}

// unlist drops id from p.listed (delivered, or gone); p.mu is held.
func (p *Publisher) unlist(id string) {
	if i, ok := slices.BinarySearch(p.listed, id); ok {
		p.listed = slices.Delete(p.listed, i, i+1)
	}
}

// get reads a listed entry, with its digest when the outbox keeps it (into
// *buf then); ok is false when it is gone (and it leaves p.listed).
func (p *Publisher) get(ctx context.Context, id string, buf *[]byte) (e entry, ok bool, err error) {
	if d, isDigester := p.opts.Outbox.(OutboxDigester); isDigester {
		data, digest, found, gerr := d.OutboxGetDigest(ctx, id, buf)
		e, ok, err = entry{id: id, data: data, digest: digest, hashed: true}, found, gerr
	} else {
		var data []byte
		data, ok, err = p.opts.Outbox.(OutboxLister).OutboxGet(ctx, id)
		e = entry{id: id, data: data}
	}
	if err == nil && !ok {
		p.mu.Lock()
		p.unlist(id)
		p.mu.Unlock()
	}
	return e, ok, err
}

// hold keeps an id that cannot be sent out of every scan.
func (p *Publisher) hold(id string) {
	p.log.Error("sync: outbox id cannot be sent (not printable ASCII or too long); held", "id", id)
	p.mu.Lock()
	p.held[id] = false
	p.mu.Unlock()
}

// scanned ends a scan that saw seen entries and stopped with err.
func (p *Publisher) scanned(out []entry, seen int, err error) ([]entry, error) {
	complete := err == nil
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, err
	}
	p.mu.Lock()
	if complete || seen > p.stats.OutboxDepth {
		p.stats.OutboxDepth = seen
	}
	p.mu.Unlock()
	return out, nil
}
