package agentd

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeseal/edgeseal/store"
)

// watchSIGHUP calls reload on each SIGHUP (one at a time; signals that
// come during a reload are folded into one more) until stop is called.
func watchSIGHUP(reload func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-ch:
				reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		<-finished
	}
}

// errStopping answers a policy reload asked while the agent stops.
var errStopping = fmt.Errorf("agent: stopping: %w", store.ErrClosed) // the API answers 503 unavailable
