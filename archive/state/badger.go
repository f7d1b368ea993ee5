package state

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/edgeseal/edgeseal/store"
)

// The Badger store keeps its rows in a store.IndexStore of its own:
//
//	"c" len(device) device            -> the Chain (JSON)
//	"k" len(device) device epoch size -> root || bundle
//	"b" digest                        -> the Accepted (JSON)
//
// (len one byte, epoch and size 8 bytes big-endian). An Advance reads the
// chain and writes it with its checkpoints in one synced Write, under a
// lock of the device (one of a fixed set of stripes): the index is this
// process's alone (store.OpenIndex locks its directory), so the lock is
// the whole of the compare-and-advance.

// Badger is the Store on a Badger index.
type Badger struct {
	x     store.IndexStore
	seed  maphash.Seed
	locks [64]sync.Mutex

	lmu    sync.Mutex
	leases map[string]*badgerLease
}

// badgerLease is a device's lease: held while ch holds a token; waiters
// counts those holding or waiting (the entry goes when it is zero).
type badgerLease struct {
	ch      chan struct{}
	waiters int
}

var _ Store = (*Badger)(nil)

// badgerMemTable is the store's memtable: rows are small, and the
// largest Write (a chain with MaxVerify bytes and a replay's batch of
// checkpoints) stays well under its 15%.
const badgerMemTable = 4 << 20

// OpenBadger opens (creating) the store in dir, a directory of its own.
func OpenBadger(ctx context.Context, dir string) (*Badger, error) {
	x, err := store.OpenIndex(ctx, store.IndexOptions{Dir: dir, MemTableSize: badgerMemTable})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return NewBadger(x), nil
}

// NewBadger is the Store on x, which it owns from now on (Close closes
// it); nothing else may write x.
func NewBadger(x store.IndexStore) *Badger {
	return &Badger{x: x, seed: maphash.MakeSeed(), leases: map[string]*badgerLease{}}
}

func devKey(prefix byte, device string) []byte {
	k := make([]byte, 0, 2+len(device)+16)
	return append(append(k, prefix, byte(len(device))), device...)
}

func cpKey(device string, epoch, size uint64) []byte {
	k := devKey('k', device)
	k = binary.BigEndian.AppendUint64(k, epoch)
	return binary.BigEndian.AppendUint64(k, size)
}

func (b *Badger) lock(device string) *sync.Mutex {
	return &b.locks[maphash.String(b.seed, device)%uint64(len(b.locks))]
}

// Get returns the device's chain.
func (b *Badger) Get(ctx context.Context, device string) (Chain, error) {
	v, err := b.x.Get(ctx, devKey('c', device))
	if errors.Is(err, store.ErrNotFound) {
		return Chain{}, fmt.Errorf("state: %s: %w", device, ErrNotFound)
	}
	if err != nil {
		return Chain{}, fmt.Errorf("state: %w", err)
	}
	var c Chain
	if err := json.Unmarshal(v, &c); err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	return c, nil
}

// Advance stores to if the device's chain is still at version from.
func (b *Badger) Advance(ctx context.Context, device string, from uint64, to Chain, cps ...Checkpoint) (Chain, error) {
	if err := check(device, to); err != nil {
		return Chain{}, err
	}
	l := b.lock(device)
	l.Lock()
	defer l.Unlock()
	cur, err := b.Get(ctx, device)
	switch {
	case errors.Is(err, ErrNotFound):
		if from != 0 {
			return Chain{}, &ConflictError{Device: device, Expected: from}
		}
	case err != nil:
		return Chain{}, err
	case cur.Version != from:
		return Chain{}, &ConflictError{Device: device, Expected: from, Stored: &cur}
	default:
		// Never lowered (AdvanceReceipt may have raised them since from
		// was read).
		recv := to
		to.ReceiptLogIndex, to.ReceiptSize, to.ReceiptRoot = cur.ReceiptLogIndex, cur.ReceiptSize, cur.ReceiptRoot
		raiseReceipt(&to, recv.ReceiptLogIndex, recv.ReceiptSize, recv.ReceiptRoot)
	}
	to.Version = from + 1
	v, err := json.Marshal(to)
	if err != nil {
		return Chain{}, fmt.Errorf("state: %w", err)
	}
	ops := []store.IndexOp{{Kind: store.IndexPut, Key: devKey('c', device), Value: v}}
	for _, cp := range cps {
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: cpKey(device, cp.Epoch, cp.Size), Value: append(cp.Root[:], cp.Bundle[:]...)})
	}
	for _, acc := range to.Accepted {
		k := bundleKey(acc.Bundle)
		if _, err := b.x.Get(ctx, k); err == nil {
			continue // the first record stays
		} else if !errors.Is(err, store.ErrNotFound) {
			return Chain{}, fmt.Errorf("state: %w", err)
		}
		av, err := json.Marshal(acc)
		if err != nil {
			return Chain{}, fmt.Errorf("state: %w", err)
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: k, Value: av})
	}
	to.Accepted = nil
	if err := b.x.Write(ctx, ops); err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	return to, nil
}

// Checkpoint looks up an accepted checkpoint.
func (b *Badger) Checkpoint(ctx context.Context, device string, epoch, size uint64) (Checkpoint, error) {
	v, err := b.x.Get(ctx, cpKey(device, epoch, size))
	if errors.Is(err, store.ErrNotFound) {
		return Checkpoint{}, fmt.Errorf("state: %s checkpoint %d of epoch %d: %w", device, size, epoch, ErrNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("state: %w", err)
	}
	if len(v) != 64 {
		return Checkpoint{}, fmt.Errorf("state: %s checkpoint %d of epoch %d holds %d bytes", device, size, epoch, len(v))
	}
	cp := Checkpoint{Epoch: epoch, Size: size}
	copy(cp.Root[:], v[:32])
	copy(cp.Bundle[:], v[32:])
	return cp, nil
}

// Close closes the index.
func (b *Badger) Close() error { return b.x.Close() }

func bundleKey(digest [32]byte) []byte { return append([]byte{'b'}, digest[:]...) }

// Bundle looks up an accepted bundle.
func (b *Badger) Bundle(ctx context.Context, digest [32]byte) (Accepted, error) {
	v, err := b.x.Get(ctx, bundleKey(digest))
	if errors.Is(err, store.ErrNotFound) {
		return Accepted{}, fmt.Errorf("state: bundle sha256:%x: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("state: %w", err)
	}
	var acc Accepted
	if err := json.Unmarshal(v, &acc); err != nil || acc.Bundle != digest {
		return Accepted{}, fmt.Errorf("state: bundle sha256:%x: unreadable record", digest)
	}
	return acc, nil
}

// AdvanceReceipt records a bundle's receipt and raises its chain's
// receipt fields.
func (b *Badger) AdvanceReceipt(ctx context.Context, r Receipt) (Accepted, error) {
	if err := checkReceipt(r); err != nil {
		return Accepted{}, err
	}
	l := b.lock(r.Device)
	l.Lock()
	defer l.Unlock()
	acc, err := b.Bundle(ctx, r.Bundle)
	if err != nil {
		return Accepted{}, err
	}
	if acc.Device != r.Device || acc.LogIndex != r.LogIndex {
		return Accepted{}, fmt.Errorf("state: bundle sha256:%x of %s at log index %d: %w", r.Bundle, r.Device, r.LogIndex, ErrNotFound)
	}
	c, err := b.Get(ctx, r.Device)
	if err != nil {
		return Accepted{}, err
	}
	var ops []store.IndexOp
	if len(acc.Receipt) == 0 {
		acc.Receipt, acc.Pending = r.Receipt, nil
		av, err := json.Marshal(acc)
		if err != nil {
			return Accepted{}, fmt.Errorf("state: %w", err)
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: bundleKey(r.Bundle), Value: av})
	}
	if r.Size > c.ReceiptSize {
		raiseReceipt(&c, r.LogIndex, r.Size, r.Root)
		cv, err := json.Marshal(c)
		if err != nil {
			return Accepted{}, fmt.Errorf("state: %w", err)
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: devKey('c', r.Device), Value: cv})
	}
	if len(ops) > 0 {
		if err := b.x.Write(ctx, ops); err != nil {
			return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
		}
	}
	return acc, nil
}

// Lock takes the device's lease (this process's only).
func (b *Badger) Lock(ctx context.Context, device string) (Lease, error) {
	b.lmu.Lock()
	l := b.leases[device]
	if l == nil {
		l = &badgerLease{ch: make(chan struct{}, 1)}
		b.leases[device] = l
	}
	l.waiters++
	b.lmu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return &badgerHeld{b: b, device: device, l: l}, nil
	case <-ctx.Done():
		b.drop(device, l)
		return nil, fmt.Errorf("state: lease of %s: %w", device, ctx.Err())
	}
}

func (b *Badger) drop(device string, l *badgerLease) {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if l.waiters--; l.waiters == 0 {
		delete(b.leases, device)
	}
}

type badgerHeld struct {
	b      *Badger
	device string
	l      *badgerLease
	once   sync.Once
}

func (h *badgerHeld) Release() error {
	h.once.Do(func() {
		<-h.l.ch
		h.b.drop(h.device, h.l)
	})
	return nil
}

// Shared is false: the Badger directory is this process's.
func (b *Badger) Shared() bool { return false }
