package sync

import (
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
	// MaxBytes bounds the bytes held by all partials (default 256 MiB):
	// a partial holds its bundle's whole size from its first frame.
	// Older partials are dropped to make room.
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
	// Hashed is Bundle with Digest, computed over exactly these bytes
	// (so a receiver need not hash them again).
	Hashed bundle.Hashed
}

// AssemblerStats counts what an Assembler did.
type AssemblerStats struct {
	Partials  int   // incomplete bundles held now
	Bytes     int64 // bytes reserved by them now (each its bundle's size)
	Completed uint64
	Evicted   uint64 // partials dropped for room
	Expired   uint64 // partials dropped by TTL
	Refused   uint64 // frames refused with an error
}

type partialKey struct {
	source string
	digest [32]byte
}

// partial is a bundle being joined: its chunks are copied to their place
// in buf (the whole bundle, allocated at its first frame). Every chunk
// but the last has the same length, room (EncodeChunks' frames), so a
// chunk's place is index*room.
type partial struct {
	id    string
	count int
	size  int64
	room  int64 // 0 until known
	buf   []byte
	have  []bool // chunks placed, by index
	got   int    // how many
	bytes int64  // chunk bytes placed
	last  time.Time
}

// Assembler joins frames into bundles. Frames of one bundle are keyed by
// the source (the publisher's site/device) and the bundle digest, so
// sources cannot disturb each other's partials except through the shared
// bounds. A partial reserves its whole bundle size (counted against
// MaxBytes) at its first frame, and each chunk is copied once, to its
// place; the bundle is hashed once, outside the lock. It is safe for
// concurrent use.
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
// *MismatchError, *DigestError) for a frame it refuses. Add does not keep
// frame: the chunk is copied.
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
		a.mu.Lock()
		a.expire(a.now())
		a.mu.Unlock()
		return a.finish(source, f, append([]byte(nil), f.Chunk...))
	}
	whole, err := a.place(source, f)
	if whole == nil || err != nil {
		return nil, err
	}
	return a.finish(source, f, whole)
}

// place copies a chunk of a bundle of several to its place and returns
// the bundle once all its chunks are there.
func (a *Assembler) place(source string, f *Frame) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expire(now)
	key := partialKey{source: source, digest: f.Digest}
	p := a.partials[key]
	if p == nil {
		if err := a.makeRoom(1, f.Size, key); err != nil {
			a.stats.Refused++
			return nil, err
		}
		p = &partial{id: f.ID, count: f.Count, size: f.Size, buf: make([]byte, f.Size), have: make([]bool, f.Count)}
		a.partials[key] = p
		a.stats.Bytes += p.size
	}
	if err := p.check(f); err != nil {
		a.stats.Refused++
		return nil, err
	}
	p.last = now
	if p.have[f.Index] {
		return nil, nil
	}
	off, err := p.offset(f)
	if err != nil {
		a.stats.Refused++
		return nil, err
	}
	copy(p.buf[off:], f.Chunk)
	p.have[f.Index] = true
	p.got++
	p.bytes += int64(len(f.Chunk))
	if p.got < p.count {
		return nil, nil
	}
	a.drop(key, p)
	if p.bytes != p.size { // cannot happen: offset keeps the chunks in place
		a.stats.Refused++
		return nil, &MismatchError{Bundle: bundle.FormatHash(f.Digest), Field: "size", Want: strconv.FormatInt(p.size, 10), Got: strconv.FormatInt(p.bytes, 10)}
	}
	return p.buf, nil
}

// offset is where f's chunk goes: index*room, room being the length of
// every chunk but the last (learnt from the first chunk that came, the
// last one giving (size-len)/(count-1)); a chunk that does not fit that
// shape is refused with *MismatchError.
func (p *partial) offset(f *Frame) (int64, error) {
	n := int64(len(f.Chunk))
	room := n
	if f.Index == p.count-1 {
		rest := p.size - n
		c := int64(p.count - 1)
		if rest <= 0 || rest%c != 0 || rest/c < n {
			return 0, p.badChunk(f, "the last of "+strconv.Itoa(p.count)+" chunks of a "+strconv.FormatInt(p.size, 10)+"-byte bundle")
		}
		room = rest / c
	}
	if p.room == 0 {
		if c := int64(p.count); room*(c-1) >= p.size || room*c < p.size { // the last chunk empty, or longer
			return 0, p.badChunk(f, strconv.Itoa(p.count)+" chunks of a "+strconv.FormatInt(p.size, 10)+"-byte bundle")
		}
		p.room = room
	}
	if room != p.room {
		return 0, p.badChunk(f, strconv.FormatInt(p.room, 10)+" bytes (chunk length of the bundle)")
	}
	return int64(f.Index) * room, nil
}

func (p *partial) badChunk(f *Frame, want string) error {
	return &MismatchError{Bundle: bundle.FormatHash(f.Digest), Field: "chunk", Want: want, Got: strconv.Itoa(len(f.Chunk)) + " bytes at index " + strconv.Itoa(f.Index)}
}

// finish hashes a joined bundle (a.mu not held) and checks its digest.
func (a *Assembler) finish(source string, f *Frame, whole []byte) (*Complete, error) {
	h := bundle.HashBytes(whole)
	a.mu.Lock()
	defer a.mu.Unlock()
	if got := h.Sum(); got != f.Digest {
		a.stats.Refused++
		return nil, &DigestError{Want: bundle.FormatHash(f.Digest), Got: bundle.FormatHash(got)}
	}
	a.stats.Completed++
	return &Complete{Source: source, ID: f.ID, Digest: f.Digest, Bundle: whole, Hashed: h}, nil
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
	a.stats.Bytes -= p.size
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
