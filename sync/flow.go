package sync

import (
	"context"
	"math/rand/v2"
	gosync "sync"
	"time"
)

// tokenBucket limits bytes per second. A take larger than the bucket is
// allowed and paid for by waiting (the bucket goes into debt), so frames of
// any size pass at the configured average rate.
type tokenBucket struct {
	mu     gosync.Mutex
	rate   float64 // bytes per second; <= 0 unlimited
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newTokenBucket(rate int64, burst int, now func() time.Time) *tokenBucket {
	b := &tokenBucket{rate: float64(rate), burst: float64(max(int64(burst), rate)), now: now}
	b.tokens = b.burst
	b.last = now()
	return b
}

// reserve takes n bytes and returns how long the caller must wait before
// sending them.
func (b *tokenBucket) reserve(n int) time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// wait reserves n bytes and sleeps as needed, or returns ctx's error.
func (b *tokenBucket) wait(ctx context.Context, n int) error {
	d := b.reserve(n)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff is capped exponential backoff with jitter: attempt k waits a
// random time in [d/2, d] with d = min(max, min*2^k).
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func (b *backoff) reset() { b.attempt = 0 }

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
