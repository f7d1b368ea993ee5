package sync

import (
	"context"
	"errors"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// FrameStore joins the frames of multi-frame bundles for a Subscriber.
// The in-memory Assembler (MemFrames) is one; archives that run as
// several replicas on one shared subscription group need one whose
// partial bundles live where every replica sees them (the archive's
// database), because the broker deals the frames of one bundle to
// different replicas.
//
// Add takes one frame from source (the publisher's site/device) and
// returns the bundle when this frame completed it and its SHA-256
// matched the digest its frames announced. Contract, for every
// implementation:
//   - the frames of a bundle may come in any order and any of them may
//     come again: a repeat is harmless ((nil, nil));
//   - a frame that does not decode, disagrees with earlier frames of its
//     bundle (id, count, size, chunk shape: see ChunkRoom) or whose
//     bundle does not hash to its digest is refused (*FrameError,
//     *MismatchError, *DigestError); a bundle larger than MaxBundle, or a
//     frame past its source's bounds (MaxSourcePartials: the source's
//     least recently touched partial is dropped to make room;
//     MaxSourceBytes: a frame that does not fit even so), is refused with
//     *LimitError;
//   - a partial that got no frame for the TTL is dropped;
//   - among all the callers sharing the store (every replica), exactly one
//     gets the Complete of a bundle for each time all its frames came
//     (a bundle sent again after it completed is joined again);
//   - when Add returns, the frame is as durable as the store makes it
//     (the Subscriber acknowledges it to the broker after Add returns);
//   - any other error (the store unreachable, ctx done) means the frame
//     was not kept; the publisher sends the bundle again.
//
// A single-frame bundle needs no store: implementations may complete it
// at once without keeping anything.
type FrameStore interface {
	Add(ctx context.Context, source string, frame []byte) (*Complete, error)
}

// MemFrames is the FrameStore of one process: an Assembler.
type MemFrames struct{ *Assembler }

var _ FrameStore = MemFrames{}

// Add is Assembler.Add (ctx is not used: nothing blocks).
func (m MemFrames) Add(_ context.Context, source string, frame []byte) (*Complete, error) {
	return m.Assembler.Add(source, frame)
}

// ChunkRoom checks the shape of f's chunk against a bundle of f.Count
// chunks of f.Size bytes whose every chunk but the last is room bytes
// long (0: not known yet), as EncodeChunks cuts them, and returns the
// room f implies (room, when known). A chunk that does not fit is
// refused with *MismatchError. FrameStores other than the Assembler use
// it to refuse the chunks the Assembler refuses; the chunk goes at
// f.Index*room.
func ChunkRoom(f *Frame, room int64) (int64, error) {
	p := &partial{count: f.Count, size: f.Size, room: room}
	if _, err := p.offset(f); err != nil {
		return 0, err
	}
	return p.room, nil
}

// CheckFrame refuses a frame f whose header disagrees with id, count and
// size, those of the earlier frames of its bundle (*MismatchError).
func CheckFrame(f *Frame, id string, count int, size int64) error {
	p := &partial{id: id, count: count, size: size}
	return p.check(f)
}

// FinishBundle hashes whole, the joined chunks of the bundle f belongs
// to, and returns it as a Complete from source, or *DigestError when it
// does not hash to f.Digest.
func FinishBundle(source string, f *Frame, whole []byte) (*Complete, error) {
	h := wire.HashBytes(whole)
	if got := h.Sum(); got != f.Digest {
		return nil, &DigestError{Want: wire.FormatHash(f.Digest), Got: wire.FormatHash(got)}
	}
	return &Complete{Source: source, ID: f.ID, Digest: f.Digest, Bundle: whole, Hashed: h}, nil
}

// WithDefaults returns l with its zero fields set to the defaults (as
// NewAssembler sets them).
func (l AssemblerLimits) WithDefaults() AssemblerLimits {
	l.setDefaults()
	return l
}

// IsFrameRefusal reports whether err is a FrameStore's refusal of a
// frame (*FrameError, *LimitError, *MismatchError, *DigestError), not a
// failure of the store.
func IsFrameRefusal(err error) bool {
	var fe *FrameError
	var le *LimitError
	var me *MismatchError
	var de *DigestError
	return errors.As(err, &fe) || errors.As(err, &le) || errors.As(err, &me) || errors.As(err, &de)
}

// frameAttempts bounds the tries of a frame a FrameStore failed to keep
// (not refused), frameRetryWait the first wait between them (doubling).
const (
	frameAttempts  = 4
	frameRetryWait = 200 * time.Millisecond
)

// addFrame adds a frame to the subscriber's FrameStore, trying again a
// few times, with a growing wait, when the store failed (its database
// briefly unreachable): the frame is acknowledged when this returns, so
// a frame given up on is lost and its bundle comes again only after the
// agent's resend delay. Receiving waits meanwhile: nothing else could be
// kept either.
func (s *Subscriber) addFrame(ctx context.Context, source string, frame []byte) (*Complete, error) {
	wait := frameRetryWait
	for attempt := 1; ; attempt++ {
		c, err := s.frames.Add(ctx, source, frame)
		if err == nil || IsFrameRefusal(err) || attempt == frameAttempts || ctx.Err() != nil {
			return c, err
		}
		s.log.Warn("sync: frame not kept; trying again", "device", source, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}
