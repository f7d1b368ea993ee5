package sync_test

import (
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/frametest"
)

// TestMemFramesConformance runs the FrameStore conformance suite on the
// in-memory Assembler (its "replicas" are one Assembler).
func TestMemFramesConformance(t *testing.T) {
	frametest.Run(t, func(t *testing.T, n int, limits sync.AssemblerLimits, now func() time.Time) []sync.FrameStore {
		a := sync.NewAssembler(limits)
		sync.SetAssemblerClock(a, now)
		out := make([]sync.FrameStore, n)
		for i := range out {
			out[i] = sync.MemFrames{Assembler: a}
		}
		return out
	})
}
