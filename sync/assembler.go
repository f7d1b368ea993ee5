package sync

import (
	"crypto/sha256"
	"strconv"
	gosync "sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
)

// AssemblerLimits bound what an Assembler keeps. Zero fields take the
// defaults.
type AssemblerLimits struct {
	// MaxPartials is the most incomplete bundles kept at once (default
	// 64). When full, the least recently touched one is dropped.
	MaxPartials int
	// MaxBytes bounds the chunk bytes held in all partials (default 256
	// MiB). Older partials are dropped to make room.
	MaxBytes int64
	// MaxBundle bounds one bundle's size (default 64 MiB); a frame that
	// announces more is refused with *LimitError.
	MaxBundle int64
	// TTL drops partials that got no frame for this long (default 10 min).
	TTL time.Duration
}

func (l *AssemblerLimits) setDefaults() {
	if l.MaxPartials <= 0 {
		l.MaxPartials = 64
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 20
	}
	if l.MaxBundle <= 0 {
		l.MaxBundle = 64 << 20
	}
	if l.MaxBundle > l.MaxBytes {
		l.MaxBundle = l.MaxBytes
	}
	if l.TTL <= 0 {
		l.TTL = 10 * time.Minute
	}
}

// Complete is a reassembled bundle whose SHA-256 matched its frames.
type Complete struct {
	Source string
	ID     string
	Digest [32]byte
	Bundle []byte
}

// AssemblerStats counts what an Assembler did.
type AssemblerStats struct {
	Partials  int   // incomplete bundles held now
	Bytes     int64 // chunk bytes held now
	Completed uint64
	Evicted   uint64 // partials dropped for room
	Expired   uint64 // partials dropped by TTL
	Refused   uint64 // frames refused with an error
}

type partialKey struct {
	source string
	digest [32]byte
}

type partial struct {
	id     string
	count  int
	size   int64
	chunks map[int][]byte
	bytes  int64
	last   time.Time
}

// Assembler joins frames into bundles. Frames of one bundle are keyed by
// the source (the publisher's site/device) and the bundle digest, so
// sources cannot disturb each other's partials except through the shared
// bounds. It is safe for concurrent use.
type Assembler struct {
	mu       gosync.Mutex
	limits   AssemblerLimits
	now      func() time.Time
	partials map[partialKey]*partial
	stats    AssemblerStats
}

// NewAssembler returns an Assembler with the given limits.
func NewAssembler(limits AssemblerLimits) *Assembler {
	limits.setDefaults()
	return &Assembler{limits: limits, now: time.Now, partials: make(map[partialKey]*partial)}
}

// Stats returns counters and current holdings.
func (a *Assembler) Stats() AssemblerStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Partials = len(a.partials)
	return s
}

// Add takes one frame from source. It returns the bundle when this frame
// completed it and its SHA-256 matched, (nil, nil) while more frames are
// needed or for a repeated chunk, and an error (*FrameError, *LimitError,
// *MismatchError, *DigestError) for a frame it refuses.
func (a *Assembler) Add(source string, frame []byte) (*Complete, error) {
	f, err := DecodeFrame(frame)
	if err != nil {
		a.refused()
		return nil, err
	}
	if f.Size > a.limits.MaxBundle {
		a.refused()
		return nil, &LimitError{What: "bundle size", Value: f.Size, Limit: a.limits.MaxBundle}
	}
	if f.Count == 1 {
		return a.single(source, f)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expire(now)
	key := partialKey{source: source, digest: f.Digest}
	p := a.partials[key]
	if p == nil {
		p = &partial{id: f.ID, count: f.Count, size: f.Size, chunks: make(map[int][]byte)}
		if err := a.makeRoom(1, 0, key); err != nil {
			a.stats.Refused++
			return nil, err
		}
		a.partials[key] = p
	}
	if err := p.check(f); err != nil {
		a.stats.Refused++
		return nil, err
	}
	p.last = now
	if _, dup := p.chunks[f.Index]; dup {
		return nil, nil
	}
	n := int64(len(f.Chunk))
	if p.bytes+n > p.size {
		a.stats.Refused++
		return nil, &MismatchError{Bundle: bundle.FormatHash(f.Digest), Field: "chunk", Want: "at most " + strconv.FormatInt(p.size-p.bytes, 10) + " more bytes", Got: strconv.FormatInt(n, 10) + " bytes"}
	}
	if err := a.makeRoom(0, n, key); err != nil {
		a.stats.Refused++
		return nil, err
	}
	p.chunks[f.Index] = append([]byte(nil), f.Chunk...)
	p.bytes += n
	a.stats.Bytes += n
	if len(p.chunks) < p.count {
		return nil, nil
	}
	delete(a.partials, key)
	a.stats.Bytes -= p.bytes
	if p.bytes != p.size {
		a.stats.Refused++
		return nil, &MismatchError{Bundle: bundle.FormatHash(f.Digest), Field: "size", Want: strconv.FormatInt(p.size, 10), Got: strconv.FormatInt(p.bytes, 10)}
	}
	whole := make([]byte, 0, p.size)
	for i := 0; i < p.count; i++ {
		whole = append(whole, p.chunks[i]...)
	}
	return a.finish(source, f, whole)
}

func (a *Assembler) single(source string, f *Frame) (*Complete, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(a.now())
	return a.finish(source, f, append([]byte(nil), f.Chunk...))
}

// finish checks the digest; a.mu is held.
func (a *Assembler) finish(source string, f *Frame, whole []byte) (*Complete, error) {
	if got := sha256.Sum256(whole); got != f.Digest {
		a.stats.Refused++
		return nil, &DigestError{Want: bundle.FormatHash(f.Digest), Got: bundle.FormatHash(got)}
	}
	a.stats.Completed++
	return &Complete{Source: source, ID: f.ID, Digest: f.Digest, Bundle: whole}, nil
}

func (p *partial) check(f *Frame) error {
	d := bundle.FormatHash(f.Digest)
	switch {
	case f.ID != p.id:
		return &MismatchError{Bundle: d, Field: "id", Want: p.id, Got: f.ID}
	case f.Count != p.count:
		return &MismatchError{Bundle: d, Field: "count", Want: strconv.Itoa(p.count), Got: strconv.Itoa(f.Count)}
	case f.Size != p.size:
		return &MismatchError{Bundle: d, Field: "size", Want: strconv.FormatInt(p.size, 10), Got: strconv.FormatInt(f.Size, 10)}
	}
	return nil
}

func (a *Assembler) refused() {
	a.mu.Lock()
	a.stats.Refused++
	a.mu.Unlock()
}

// expire drops partials idle longer than the TTL; a.mu is held.
func (a *Assembler) expire(now time.Time) {
	for k, p := range a.partials {
		if now.Sub(p.last) > a.limits.TTL {
			a.drop(k, p)
			a.stats.Expired++
		}
	}
}

func (a *Assembler) drop(k partialKey, p *partial) {
	delete(a.partials, k)
	a.stats.Bytes -= p.bytes
}

// makeRoom evicts the least recently touched partials other than keep
// until one more partial (newPartials) and n more bytes fit; a.mu is held.
func (a *Assembler) makeRoom(newPartials int, n int64, keep partialKey) error {
	if n > a.limits.MaxBytes {
		return &LimitError{What: "partial bytes", Value: n, Limit: a.limits.MaxBytes}
	}
	for len(a.partials)+newPartials > a.limits.MaxPartials || a.stats.Bytes+n > a.limits.MaxBytes {
		var oldK partialKey
		var old *partial
		for k, p := range a.partials {
			if k != keep && (old == nil || p.last.Before(old.last)) {
				oldK, old = k, p
			}
		}
		if old == nil {
			return &LimitError{What: "partial bytes", Value: a.stats.Bytes + n, Limit: a.limits.MaxBytes}
		}
		a.drop(oldK, old)
		a.stats.Evicted++
	}
	return nil
}
