package sdnotify

import "context"

type ctxKey struct{}

// NewContext returns ctx carrying n: the daemon entry points attach the
// process's Notifier, and the run loops they call (which demos and tests
// also call, without one) notify through FromContext.
func NewContext(ctx context.Context, n *Notifier) context.Context {
	return context.WithValue(ctx, ctxKey{}, n)
}

// FromContext returns the Notifier in ctx, or nil (a no-op Notifier).
func FromContext(ctx context.Context) *Notifier {
	n, _ := ctx.Value(ctxKey{}).(*Notifier)
	return n
}
