// Package state keeps each device's chain state: what the archive needs
// to decide the admission of the device's next bundle without replaying
// its history (the last accepted bundle and checkpoint, the verify state
// it left, how many bundles the epoch holds), the archive checkpoint of
// the device's last receipt (where the next receipt's witness proof
// starts), and every checkpoint accepted from the device (fork and
// duplicate checks), looked up by size.
//
// # Contract
//
// A Store holds at most one Chain per device.
//
//   - Get returns the device's Chain, or an error wrapping ErrNotFound
//     when the device has none (a device whose first bundle was never
//     accepted). Nothing else is "not found".
//   - Advance(device, from, to) replaces the stored Chain by to only if
//     the stored one is still from: its Version equals from.Version
//     (from.Version 0: the device has none). Every successful Advance
//     stores to with Version from.Version+1 and returns it; Version is
//     the store's and changes with nothing else, so equal versions are
//     equal chains. Otherwise nothing is written and the error is a
//     *ConflictError carrying the stored Chain (Stored nil: none is
//     stored). Of concurrent Advances from one Version exactly one
//     wins, in any process sharing the store; Advances of other devices
//     never conflict.
//   - Advance records the checkpoints it is given in the same atomic
//     write (a checkpoint of the same device, epoch and size is
//     replaced): Checkpoint looks one up, ErrNotFound when absent.
//   - Everything Advance returned is durable: after a crash or a
//     restart Get returns it.
//   - Advance records the accepted bundles of to.Accepted in the same
//     atomic write: Bundle looks one up by its digest (ErrNotFound when
//     none), from any process sharing the store. The first record of a
//     digest stays; a later one is ignored. This is the archive's one
//     answer to "was this bundle accepted, and with which receipt".
//   - A bundle may be recorded without its receipt (Receipt empty:
//     logged, its chain advanced, its receipt still to be signed), with
//     Pending, what its recorder needs to finish it. AdvanceReceipt
//     records the receipt later (the first one recorded stays; Pending
//     is then dropped) and raises the chain's ReceiptLogIndex,
//     ReceiptSize and ReceiptRoot to the receipt's when its size is
//     larger than the stored ReceiptSize, in one atomic write; a bundle
//     not recorded (or of another device or log index) is an error
//     wrapping ErrNotFound. No write ever lowers ReceiptSize: an Advance
//     whose to.ReceiptSize is not larger than the stored one keeps the
//     stored receipt fields (and returns them). The receipt fields are
//     the only ones that change without a new Version.
//   - Lock takes the device's lease: at most one holder at a time among
//     every process sharing the store, waiting until it is free or ctx is
//     done (then ctx's error, wrapped). The holder releases it with
//     Lease.Release; a holder that dies loses it at once (SQL: the
//     database releases the locks of a closed connection; Badger: the
//     process is the only one). Lock of one device never waits for
//     another's lease. The lease is advisory: Advance does not check it.
//   - Shared reports whether other processes may advance the store's
//     chains (then a chain read may be stale as soon as it is read unless
//     the device's lease is held).
//
// Implementations: Badger (OpenBadger, over a store.IndexStore of its
// own, one process: the Badger directory is locked) and MariaDB or MySQL
// (OpenSQL, over a database/sql pool: one row per device advanced by a
// conditional UPDATE, any number of processes). statetest.Run is the
// conformance suite both pass.
package state

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFound is a device without a chain, or a checkpoint not recorded.
var ErrNotFound = errors.New("state: not found")

// Chain is a device's chain state.
type Chain struct {
	// Version is the store's: 1 after the first Advance, one more after
	// each. A Chain passed as Advance's to has it ignored.
	Version uint64
	// Epoch is the device's epoch the chain fields below are of (1 the
	// first; a rekey starts the next one from nothing).
	Epoch uint64
	// Bundles is how many bundles of Epoch were accepted: the sequence
	// number of the last one.
	Bundles uint64
	// Head is the SHA-256 digest of the last accepted bundle of Epoch,
	// LogIndex its archive log index.
	Head     [32]byte
	LogIndex uint64
	// Size and Root are the device checkpoint the last bundle sealed.
	Size uint64
	Root [32]byte
	// Verify is the verification state the last bundle left
	// (verify.State, JSON), opaque to the store; at most MaxVerify bytes.
	Verify []byte
	// ReceiptLogIndex is the log index of the device's receipt of the
	// highest log index (any epoch), ReceiptSize and ReceiptRoot the
	// archive checkpoint it was signed against: the next receipt's
	// consistency proof starts there. ReceiptSize 0: none.
	ReceiptLogIndex uint64
	ReceiptSize     uint64
	ReceiptRoot     [32]byte
	// Accepted are the bundles an Advance accepts with this chain,
	// recorded with it (Store.Bundle); Get never returns them.
	Accepted []Accepted `json:"-"`
}

// Accepted is an accepted bundle: its device, archive log index and
// signed receipt (empty: not signed yet, see Store.AdvanceReceipt).
type Accepted struct {
	Bundle   [32]byte
	Device   string
	LogIndex uint64
	Receipt  []byte // at most MaxReceipt bytes
	// Pending is what the recorder needs to finish a bundle recorded
	// without its receipt, opaque to the store (at most MaxPending
	// bytes); only with an empty Receipt, dropped when it is recorded.
	Pending []byte
}

// Receipt is a bundle's receipt recorded after its advance
// (Store.AdvanceReceipt): Size and Root are the archive checkpoint it
// was signed against.
type Receipt struct {
	Bundle   [32]byte
	Device   string
	LogIndex uint64
	Receipt  []byte // 1 to MaxReceipt bytes
	Size     uint64
	Root     [32]byte
}

// MaxReceipt bounds Accepted.Receipt.
const MaxReceipt = 1 << 20

// MaxPending bounds Accepted.Pending.
const MaxPending = 128 << 10

// MaxVerify bounds Chain.Verify.
const MaxVerify = 64 << 10

// MaxDevice bounds a device name (site/name).
const MaxDevice = 255

// Checkpoint is a device checkpoint accepted in a bundle.
type Checkpoint struct {
	Epoch  uint64
	Size   uint64
	Root   [32]byte
	Bundle [32]byte // the digest of the bundle that sealed it
}

// ConflictError is an Advance whose expected chain is no longer the
// stored one.
type ConflictError struct {
	Device   string
	Expected uint64 // the Version Advance expected
	Stored   *Chain // what is stored (nil: nothing)
}

func (e *ConflictError) Error() string {
	got := uint64(0)
	if e.Stored != nil {
		got = e.Stored.Version
	}
	return fmt.Sprintf("state: %s: expected version %d, stored %d", e.Device, e.Expected, got)
}

// Store is the chain-state store (see the package comment).
type Store interface {
	Get(ctx context.Context, device string) (Chain, error)
	Advance(ctx context.Context, device string, from uint64, to Chain, cps ...Checkpoint) (Chain, error)
	Checkpoint(ctx context.Context, device string, epoch, size uint64) (Checkpoint, error)
	Bundle(ctx context.Context, digest [32]byte) (Accepted, error)
	AdvanceReceipt(ctx context.Context, r Receipt) (Accepted, error)
	Lock(ctx context.Context, device string) (Lease, error)
	Shared() bool
	Close() error
}

// Lease is a device's lease taken by Store.Lock. Release gives it up
// (once; later calls do nothing and return nil).
type Lease interface {
	Release() error
}

// check refuses what no store keeps.
func check(device string, to Chain) error {
	if device == "" || len(device) > MaxDevice {
		return fmt.Errorf("state: device name of %d bytes (1 to %d)", len(device), MaxDevice)
	}
	if len(to.Verify) > MaxVerify {
		return fmt.Errorf("state: %s: verify state of %d bytes over %d", device, len(to.Verify), MaxVerify)
	}
	for _, acc := range to.Accepted {
		if acc.Device != device || len(acc.Receipt) > MaxReceipt {
			return fmt.Errorf("state: %s: accepted bundle of device %q with a receipt of %d bytes (at most %d)", device, acc.Device, len(acc.Receipt), MaxReceipt)
		}
		if len(acc.Pending) > MaxPending || len(acc.Pending) > 0 && len(acc.Receipt) > 0 {
			return fmt.Errorf("state: %s: accepted bundle with %d bytes pending and a receipt of %d (pending: at most %d, only without a receipt)", device, len(acc.Pending), len(acc.Receipt), MaxPending)
		}
	}
	return nil
}

// checkReceipt refuses a receipt no store keeps.
func checkReceipt(r Receipt) error {
	if r.Device == "" || len(r.Device) > MaxDevice {
		return fmt.Errorf("state: device name of %d bytes (1 to %d)", len(r.Device), MaxDevice)
	}
	if len(r.Receipt) == 0 || len(r.Receipt) > MaxReceipt {
		return fmt.Errorf("state: %s: a receipt of %d bytes (1 to %d)", r.Device, len(r.Receipt), MaxReceipt)
	}
	return nil
}

// raiseReceipt moves c's receipt fields to (logIndex, size, root) when
// size is larger than c's ReceiptSize.
func raiseReceipt(c *Chain, logIndex, size uint64, root [32]byte) {
	if size > c.ReceiptSize {
		c.ReceiptLogIndex, c.ReceiptSize, c.ReceiptRoot = logIndex, size, root
	}
}
