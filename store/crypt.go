package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Encryption at rest. With Options.EncryptionKey set, the journal seals
// every value it writes with AES-256-GCM (the stored key as additional
// data, so a value moved to another key does not open) and names the keys
// that carry caller content (payload digests, idempotency keys) by
// HMAC-SHA256 instead of in the clear. Record and hash keys are sequence
// numbers and tree indexes; the meta, checkpoint and outbox keys carry
// sizes. Badger itself runs unencrypted: its own encryption builds a new
// AES cipher and CTR stream for every entry it writes (twice: value log
// and memtable log) on its single writer goroutine, which bounded the
// journal's commit rate.
//
// Value layout: nonce (12 bytes) || AES-GCM ciphertext and tag. Nonces
// are an 8-byte random prefix, drawn at Open and again after 2^32 values,
// and a 4-byte counter: unique for the key's lifetime without a random
// draw per value.

const (
	nonceLen    = 12
	sealedExtra = nonceLen + 16 // nonce and GCM tag
)

// formatKey holds the journal's format marker: formatPlain in a journal
// without a key, formatSealed (sealed like any value) in one with.
var formatKey = []byte{pfxFormat}

const (
	formatPlain  = "edgeseal journal v2 plain"
	formatSealed = "edgeseal journal v2 sealed"
)

// crypt seals and opens values and names content-bearing keys. The zero
// value (no key) is the identity.
type crypt struct {
	aead  cipher.AEAD
	macs  sync.Pool // of hash.Hash (HMAC-SHA256 with the key-naming key)
	nonce atomic.Pointer[nonceSeq]
	mu    sync.Mutex // draws a new nonce prefix
}

type nonceSeq struct {
	prefix [8]byte
	n      atomic.Uint32
}

func newCrypt(key []byte) (*crypt, error) {
	c := &crypt{}
	if len(key) == 0 {
		return c, nil
	}
	vk, err := hkdf.Key(sha256.New, key, nil, "edgeseal journal values v2", 32)
	if err != nil {
		return nil, err
	}
	mk, err := hkdf.Key(sha256.New, key, nil, "edgeseal journal key names v2", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(vk)
	if err != nil {
		return nil, err
	}
	if c.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	c.macs.New = func() any { return hmac.New(sha256.New, mk) }
	c.nonce.Store(freshNonces())
	return c, nil
}

func freshNonces() *nonceSeq {
	s := &nonceSeq{}
	_, _ = rand.Read(s.prefix[:]) // never fails (crypto/rand)
	return s
}

func (c *crypt) sealed() bool { return c.aead != nil }

// overhead is what sealing adds to a value.
func (c *crypt) overhead() int {
	if c.aead == nil {
		return 0
	}
	return sealedExtra
}

// nextNonce returns a nonce never returned before under this key (but for
// a 2^-64-class collision of random prefixes).
func (c *crypt) nextNonce(dst []byte) {
	for {
		s := c.nonce.Load()
		n := s.n.Add(1)
		if n != 0 { // 0: wrapped; values 1..2^32-1 per prefix
			copy(dst, s.prefix[:])
			dst[8], dst[9], dst[10], dst[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
			return
		}
		c.mu.Lock()
		if c.nonce.Load() == s {
			c.nonce.Store(freshNonces())
		}
		c.mu.Unlock()
	}
}

// seal returns the bytes stored for value under key (value itself when
// the journal has no key).
func (c *crypt) seal(key, value []byte) []byte {
	if c.aead == nil {
		return value
	}
	return c.sealAppend(make([]byte, 0, nonceLen+len(value)+16), key, value)
}

// sealAppend appends the sealed form of value (nonce, ciphertext, tag) to
// dst, which must not overlap value; without a key it returns value.
func (c *crypt) sealAppend(dst, key, value []byte) []byte {
	if c.aead == nil {
		return value
	}
	out := slices.Grow(dst, nonceLen+len(value)+16)
	n := len(out)
	out = out[:n+nonceLen]
	c.nextNonce(out[n:])
	return c.aead.Seal(out, out[n:], value, key)
}

// open returns the value stored under key: a fresh slice when sealed,
// stored itself when not. A value that does not open is a *CorruptError.
func (c *crypt) open(key, stored []byte) ([]byte, error) { return c.openTo(nil, key, stored) }

// openInPlace is open writing the value over stored (which the caller
// owns and gives up): no second buffer for a large value.
func (c *crypt) openInPlace(key, stored []byte) ([]byte, error) {
	if len(stored) < nonceLen {
		return c.open(key, stored)
	}
	return c.openTo(stored[nonceLen:nonceLen], key, stored)
}

func (c *crypt) openTo(dst, key, stored []byte) ([]byte, error) {
	if c.aead == nil {
		return stored, nil
	}
	if len(stored) < sealedExtra {
		return nil, &CorruptError{What: fmt.Sprintf("value of key %s is %d bytes, too short to be sealed", keyName(key), len(stored))}
	}
	v, err := c.aead.Open(dst, stored[:nonceLen], stored[nonceLen:], key)
	if err != nil {
		return nil, &CorruptError{What: fmt.Sprintf("value of key %s does not authenticate (altered, moved or bit rot)", keyName(key))}
	}
	return v, nil
}

// name returns the stored key for content name under prefix pfx: pfx ||
// HMAC-SHA256(name) when sealed, pfx || name when not.
func (c *crypt) name(pfx byte, name []byte) []byte {
	if c.aead == nil {
		return append([]byte{pfx}, name...)
	}
	h := c.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(name)
	k := h.Sum([]byte{pfx})
	c.macs.Put(h)
	return k
}

func (c *crypt) digestKey(pfx byte, d [32]byte) []byte { return c.name(pfx, d[:]) }

// renamePrefix returns stored key k (from name) under prefix pfx instead
// (a fresh slice): what follows the prefix, the name or its HMAC, does
// not depend on the prefix, so c.name(a, n) renamed to b is c.name(b, n)
// without a second HMAC.
func renamePrefix(k []byte, pfx byte) []byte {
	r := make([]byte, len(k))
	copy(r, k)
	r[0] = pfx
	return r
}

// idemKey is the stored key of an idempotency key (a fresh slice).
func (c *crypt) idemKey(key []byte) []byte { return c.name(pfxIdemKey, key) }

// keyName renders a stored key for an error: prefix letter and hex.
func keyName(k []byte) string {
	if len(k) == 0 {
		return "(empty)"
	}
	return fmt.Sprintf("%c/%x", k[0], k[1:])
}

// get reads and opens the value of key; badger.ErrKeyNotFound when absent.
func (c *crypt) get(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return c.value(item)
}

// value opens an item's value (a slice the caller owns).
func (c *crypt) value(item *badger.Item) ([]byte, error) {
	if c.aead == nil {
		return item.ValueCopy(nil)
	}
	var v []byte
	err := item.Value(func(stored []byte) error {
		var err error
		v, err = c.open(item.Key(), stored)
		return err
	})
	return v, err
}

// set stores value under key, sealed.
func (c *crypt) set(txn *badger.Txn, key, value []byte) error {
	return txn.Set(key, c.seal(key, value))
}

// checkFormat reads the format marker, or writes it into a journal that
// has never been written: the marker says whether the journal is sealed,
// and a sealed one opens only under its own key. A journal with data but
// no marker was written by an earlier format (Badger's own encryption).
func (c *crypt) checkFormat(db *badger.DB) error {
	var stored []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if err != nil {
			return err
		}
		stored, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return c.writeFormat(db)
	case err != nil:
		return err
	}
	if string(stored) == formatPlain {
		if c.sealed() {
			return fmt.Errorf("journal is not encrypted but a key was given: %w", ErrEncryptionKey)
		}
		return nil
	}
	if !c.sealed() {
		return fmt.Errorf("journal is encrypted and no key was given: %w", ErrEncryptionKey)
	}
	v, err := c.open(formatKey, stored)
	if err != nil || string(v) != formatSealed {
		return fmt.Errorf("journal does not open under this key: %w", ErrEncryptionKey)
	}
	return nil
}

func (c *crypt) writeFormat(db *badger.DB) error {
	used := false
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		used = it.Valid()
		return nil
	})
	if err != nil {
		return err
	}
	if used {
		return &CorruptError{What: "journal has data but no format marker (written by an earlier edgeseal format; drain its outbox and start a new journal)"}
	}
	marker := []byte(formatPlain)
	if c.sealed() {
		marker = c.seal(formatKey, []byte(formatSealed))
	}
	return db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, marker) })
}
