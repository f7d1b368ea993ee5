package archive

import (
	"context"
	"fmt"
)

// Replicas share the archive log: a device statement or rekey another
// replica logged reaches this one's device states (the gate, built from
// the log at Open) when it reads the log past what it has read, before
// each bundle's device lookup, before it checks a statement of its own,
// and every registryWatch. The gate's appliers are idempotent (a
// statement applied again leaves what it left), so this replica's own
// statements, applied at once when logged, are applied again in log
// order: the states end as the log orders them.

// applyRecord applies log record rec at seq when it is a device or
// rekey statement.
func (g *deviceGate) applyRecord(seq uint64, rec []byte) error {
	lr, err := parseLogRecord(rec)
	if err != nil {
		return fmt.Errorf("archive: log record %d: %w", seq, err)
	}
	switch {
	case lr.op != nil && isDeviceStatement(lr.op.Type):
		g.apply(lr.op)
	case lr.stmt != nil:
		g.applyRekey(lr.stmt, seq)
	}
	return nil
}

// followLog applies to the gate what the shared log holds past what it
// has read (nothing without operator keys or with a log of this archive
// alone, where every statement is applied as it is logged).
func (a *Archive) followLog(ctx context.Context) {
	if a.gate == nil || !a.shared {
		return
	}
	a.followMu.Lock()
	defer a.followMu.Unlock()
	n := a.log.size()
	if n <= a.gateRead {
		return
	}
	if err := a.log.records(ctx, a.gateRead, n, a.gate.applyRecord); err != nil {
		if !a.followFailed {
			a.lg.Error("device statements of the shared log not read: device states may be stale", "from", a.gateRead, "to", n, "err", err)
		}
		a.followFailed = true
		return
	}
	if a.followFailed {
		a.lg.Info("device statements of the shared log read again", "to", n)
	}
	a.gateRead, a.followFailed = n, false
}
