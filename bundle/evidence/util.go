package evidence

import (
	"runtime"
	"sync"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/dsse"
)

// hashAll runs fn(0..n-1) on up to GOMAXPROCS goroutines.
func hashAll(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// parseSeal decodes a seal envelope and its statement.
func parseSeal(raw []byte) (*dsse.Envelope, *bundle.Statement, error) {
	env, err := dsse.ParseEnvelope(raw)
	if err != nil {
		return nil, nil, err
	}
	st, err := bundle.ParseStatement(env.Payload)
	if err != nil {
		return nil, nil, err
	}
	return env, st, nil
}
