package sync

import (
	"strconv"
	gosync "sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// AssemblerLimits bound what an Assembler keeps. Zero fields take the
// defaults.
type AssemblerLimits struct {
	// MaxPartials is the most incomplete bundles kept at once (default
	// 64). When full, a partial of the source holding the most is
	// dropped (its least recently touched one).
	MaxPartials int
	// MaxBytes bounds the bytes held by all partials (default 256 MiB):
	// a partial holds the chunks that came, or its bundle's whole size
	// once it has 1/16 of it. Partials of the source holding the most
	// bytes are dropped to make room, its least recently touched first.
	MaxBytes int64
	// MaxSourcePartials is the most incomplete bundles kept for one
	// source (default 16, at most MaxPartials): past it, the source's own
	// least recently touched partial is dropped.
	MaxSourcePartials int
	// MaxSourceBytes bounds the bytes held for one source (default
	// MaxBytes/4, at least MaxBundle, at most MaxBytes): past it, the
	// source's own partials are dropped.
	MaxSourceBytes int64
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
	if l.MaxSourcePartials <= 0 {
		l.MaxSourcePartials = 16
	}
	l.MaxSourcePartials = min(l.MaxSourcePartials, l.MaxPartials)
	if l.MaxSourceBytes <= 0 {
		l.MaxSourceBytes = max(l.MaxBytes/4, l.MaxBundle)
	}
	l.MaxSourceBytes = min(max(l.MaxSourceBytes, l.MaxBundle), l.MaxBytes)
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
	Hashed wire.Hashed
}

// AssemblerStats counts what an Assembler did.
type AssemblerStats struct {
	Partials  int   // incomplete bundles held now
	Bytes     int64 // bytes they hold now (see Assembler)
	Completed uint64
	Evicted   uint64 // partials dropped for room (the source's own or the largest source's)
	Expired   uint64 // partials dropped by TTL
	Refused   uint64 // frames refused with an error
}

type partialKey struct {
	source string
	digest [32]byte
}

// reserveRatio bounds what a partial allocates ahead of the bytes that
// came: it allocates its whole bundle once it has 1/reserveRatio of it.
const reserveRatio = 16

// partial is a bundle being joined. Every chunk but the last has the same
// length, room (EncodeChunks' frames), so a chunk's place is index*room.
// Chunks are kept as copies until the partial has 1/reserveRatio of its
// bundle; then the whole bundle is allocated, those chunks are moved to
// their place, and every later chunk is copied straight to its place.
type partial struct {
	id    string
	count int
	size  int64
	room  int64          // 0 until known
	buf   []byte         // the whole bundle, once allocated
	early map[int][]byte // chunks that came before buf
	have  map[int]bool   // chunks received, by index
	bytes int64          // chunk bytes received
	held  int64          // bytes held: early chunks, then size
	last  time.Time
}

// Assembler joins frames into bundles. Frames of one bundle are keyed by
// the source (the publisher's site/device) and the bundle digest, so
// sources cannot disturb each other's partials except through the shared
// bounds; and each source has bounds of its own (MaxSourcePartials,
// MaxSourceBytes), past which its own partials are dropped, while the
// shared bounds drop partials of the source holding the most: a source
// that floods loses its own partials, not another's. A partial holds copies of its chunks until it has
// 1/reserveRatio of its bundle, then the whole bundle's bytes (counted
// against MaxBytes): so a frame never makes it allocate more than
// reserveRatio times the chunk bytes that came, and a bundle of up to
// reserveRatio frames is copied once, each chunk to its place. The
// bundle is hashed once, outside the lock. It is safe for concurrent use.
type Assembler struct {
	mu       gosync.Mutex
	limits   AssemblerLimits
	now      func() time.Time
	partials map[partialKey]*partial
	sources  map[string]*holding // what each source holds
	stats    AssemblerStats
}

// holding is what one source's partials hold.
type holding struct {
	partials int
	bytes    int64
}

// NewAssembler returns an Assembler with the given limits.
func NewAssembler(limits AssemblerLimits) *Assembler {
	limits.setDefaults()
	return &Assembler{limits: limits, now: time.Now, partials: make(map[partialKey]*partial), sources: make(map[string]*holding)}
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
		if err := a.makeRoom(1, 0, key); err != nil {
			a.stats.Refused++
			return nil, err
		}
		p = &partial{id: f.ID, count: f.Count, size: f.Size, early: map[int][]byte{}, have: map[int]bool{}}
		a.partials[key] = p
		a.source(source).partials++
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
	if err := a.hold(key, p, int64(len(f.Chunk))); err != nil {
		a.stats.Refused++
		return nil, err
	}
	if p.buf != nil {
		copy(p.buf[off:], f.Chunk)
	} else {
		p.early[f.Index] = append([]byte(nil), f.Chunk...)
	}
	p.have[f.Index] = true
	p.bytes += int64(len(f.Chunk))
	if len(p.have) < p.count {
		return nil, nil
	}
	a.drop(key, p)
	if p.bytes != p.size || p.buf == nil { // cannot happen: offset keeps the chunks in place
		a.stats.Refused++
		return nil, &MismatchError{Bundle: wire.FormatHash(f.Digest), Field: "size", Want: strconv.FormatInt(p.size, 10), Got: strconv.FormatInt(p.bytes, 10)}
	}
	return p.buf, nil
}

// hold makes room for n more chunk bytes of p: a copy of the chunk, or,
// once p has 1/reserveRatio of its bundle, the whole bundle, with the
// chunks held so far moved to their place (p.room is known); a.mu is held.
func (a *Assembler) hold(key partialKey, p *partial, n int64) error {
	if p.buf != nil {
		return nil
	}
	if (p.bytes+n)*reserveRatio < p.size {
		if err := a.makeRoom(0, n, key); err != nil {
			return err
		}
		p.held += n
		a.stats.Bytes += n
		a.source(key.source).bytes += n
		return nil
	}
	if err := a.makeRoom(0, p.size-p.held, key); err != nil {
		return err
	}
	a.stats.Bytes += p.size - p.held
	a.source(key.source).bytes += p.size - p.held
	p.held = p.size
	p.buf = make([]byte, p.size)
	for i, c := range p.early {
		copy(p.buf[int64(i)*p.room:], c)
	}
	p.early = nil
	return nil
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
	return &MismatchError{Bundle: wire.FormatHash(f.Digest), Field: "chunk", Want: want, Got: strconv.Itoa(len(f.Chunk)) + " bytes at index " + strconv.Itoa(f.Index)}
}

// finish hashes a joined bundle (a.mu not held) and checks its digest.
func (a *Assembler) finish(source string, f *Frame, whole []byte) (*Complete, error) {
	h := wire.HashBytes(whole)
	a.mu.Lock()
	defer a.mu.Unlock()
	if got := h.Sum(); got != f.Digest {
		a.stats.Refused++
		return nil, &DigestError{Want: wire.FormatHash(f.Digest), Got: wire.FormatHash(got)}
	}
	a.stats.Completed++
	return &Complete{Source: source, ID: f.ID, Digest: f.Digest, Bundle: whole, Hashed: h}, nil
}

func (p *partial) check(f *Frame) error {
	d := wire.FormatHash(f.Digest)
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
	a.stats.Bytes -= p.held
	h := a.sources[k.source]
	h.partials--
	h.bytes -= p.held
	if h.partials == 0 {
		delete(a.sources, k.source)
	}
}

// source returns what a source holds, recorded; a.mu is held.
func (a *Assembler) source(s string) *holding {
	h := a.sources[s]
	if h == nil {
		h = &holding{}
		a.sources[s] = h
	}
	return h
}

// makeRoom makes room for one more partial (newPartials) and n more bytes
// of keep's source: first within the source's own bounds, dropping its
// least recently touched partials other than keep, then within the
// shared bounds, dropping those of the source holding the most (bytes
// when bytes are short, partials when partials are); a.mu is held.
func (a *Assembler) makeRoom(newPartials int, n int64, keep partialKey) error {
	if n > a.limits.MaxSourceBytes {
		return &LimitError{What: "partial bytes", Value: n, Limit: a.limits.MaxSourceBytes}
	}
	own := a.sources[keep.source]
	if own == nil {
		own = &holding{}
	}
	for own.partials+newPartials > a.limits.MaxSourcePartials || own.bytes+n > a.limits.MaxSourceBytes {
		if !a.evict(keep.source, keep) {
			return &LimitError{What: "source partial bytes", Value: own.bytes + n, Limit: a.limits.MaxSourceBytes}
		}
		if a.sources[keep.source] == nil {
			own = &holding{}
		}
	}
	for {
		countShort := len(a.partials)+newPartials > a.limits.MaxPartials
		if !countShort && a.stats.Bytes+n <= a.limits.MaxBytes {
			return nil
		}
		if !a.evict(a.largest(countShort, keep), keep) {
			return &LimitError{What: "partial bytes", Value: a.stats.Bytes + n, Limit: a.limits.MaxBytes}
		}
	}
}

// largest is the source holding the most partials (byCount) or bytes
// that has a partial other than keep; a.mu is held.
func (a *Assembler) largest(byCount bool, keep partialKey) string {
	var best string
	var bestH *holding
	for s, h := range a.sources {
		if s == keep.source && h.partials == 1 && a.partials[keep] != nil {
			continue // only keep itself
		}
		more := bestH == nil
		if !more && byCount {
			more = h.partials > bestH.partials || (h.partials == bestH.partials && h.bytes > bestH.bytes)
		} else if !more {
			more = h.bytes > bestH.bytes || (h.bytes == bestH.bytes && h.partials > bestH.partials)
		}
		if more {
			best, bestH = s, h
		}
	}
	return best
}

// evict drops the least recently touched partial of source other than
// keep; it reports whether there was one. a.mu is held.
func (a *Assembler) evict(source string, keep partialKey) bool {
	var oldK partialKey
	var old *partial
	for k, p := range a.partials {
		if k.source == source && k != keep && (old == nil || p.last.Before(old.last)) {
			oldK, old = k, p
		}
	}
	if old == nil {
		return false
	}
	a.drop(oldK, old)
	a.stats.Evicted++
	return true
}
