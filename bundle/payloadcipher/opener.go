package payloadcipher

import (
	"container/list"
	"crypto/hpke"
	"crypto/sha256"
	"sync"
)

// DefaultOpenerSize is the number of window contexts an Opener keeps.
const DefaultOpenerSize = 64

// Opener keeps the recipient contexts of the last version 2 windows it
// decapsulated (least recently used out), keyed by the content key id
// and SHA-256 of the window's enc, so opening the payloads of one window
// costs one decapsulation. A context depends on the private key and enc
// only (the info is WindowInfo, the suite fixed), so a cached one is the
// one a fresh decapsulation would give. It is safe for concurrent use;
// the nil *Opener caches nothing.
type Opener struct {
	max int

	mu  sync.Mutex
	lru *list.List // of *openerEntry, most recent first
	m   map[openerKey]*list.Element
}

type openerKey struct {
	keyID string
	enc   [32]byte
}

type openerEntry struct {
	k openerKey
	r *hpke.Recipient
}

// NewOpener returns an Opener keeping at most size window contexts
// (DefaultOpenerSize when not positive).
func NewOpener(size int) *Opener {
	if size <= 0 {
		size = DefaultOpenerSize
	}
	return &Opener{max: size, lru: list.New(), m: map[openerKey]*list.Element{}}
}

// Len is the number of window contexts o keeps.
func (o *Opener) Len() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lru.Len()
}

// recipient returns the recipient context of the window whose enc is
// enc under priv, from the cache or decapsulated (and then cached).
func (o *Opener) recipient(priv *PrivateKey, enc []byte) (*hpke.Recipient, error) {
	k := openerKey{keyID: priv.ID, enc: sha256.Sum256(enc)}
	if o != nil {
		o.mu.Lock()
		if e, ok := o.m[k]; ok {
			o.lru.MoveToFront(e)
			r := e.Value.(*openerEntry).r
			o.mu.Unlock()
			return r, nil
		}
		o.mu.Unlock()
	}
	_, kdf, aead, err := Default.parts()
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(enc, priv.HPKE(), kdf, aead, []byte(WindowInfo))
	if err != nil {
		return nil, err
	}
	if o == nil {
		return r, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.m[k]; ok { // another goroutine decapsulated it meanwhile
		o.lru.MoveToFront(e)
		return e.Value.(*openerEntry).r, nil
	}
	o.m[k] = o.lru.PushFront(&openerEntry{k: k, r: r})
	for o.lru.Len() > o.max {
		old := o.lru.Back()
		o.lru.Remove(old)
		delete(o.m, old.Value.(*openerEntry).k)
	}
	return r, nil
}
