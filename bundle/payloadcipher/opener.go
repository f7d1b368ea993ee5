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
	k     openerKey
	ready chan struct{} // closed once r or err is set
	r     *hpke.Recipient
	err   error
}

// NewOpener returns an Opener keeping at most size window contexts
// (DefaultOpenerSize when not positive).
func NewOpener(size int) *Opener {
	if size <= 0 {
		size = DefaultOpenerSize
	}
	return &Opener{max: size, lru: list.New(), m: map[openerKey]*list.Element{}}
}

// Len is the number of window contexts o keeps (or is decapsulating).
func (o *Opener) Len() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lru.Len()
}

func decapsulate(priv *PrivateKey, enc []byte) (*hpke.Recipient, error) {
	_, kdf, aead, err := Default.parts()
	if err != nil {
		return nil, err
	}
	return hpke.NewRecipient(enc, priv.HPKE(), kdf, aead, []byte(WindowInfo))
}

// recipient returns the recipient context of the window whose enc is
// enc under priv, from the cache or decapsulated (and then cached).
// Callers that ask for a window being decapsulated wait for it, so a
// window is decapsulated once however many payloads of it are opened
// at the same time.
func (o *Opener) recipient(priv *PrivateKey, enc []byte) (*hpke.Recipient, error) {
	if o == nil {
		return decapsulate(priv, enc)
	}
	k := openerKey{keyID: priv.ID, enc: sha256.Sum256(enc)}
	o.mu.Lock()
	if el, ok := o.m[k]; ok {
		o.lru.MoveToFront(el)
		e := el.Value.(*openerEntry)
		o.mu.Unlock()
		<-e.ready
		return e.r, e.err
	}
	e := &openerEntry{k: k, ready: make(chan struct{})}
	o.m[k] = o.lru.PushFront(e)
	for o.lru.Len() > o.max {
		old := o.lru.Back()
		o.lru.Remove(old)
		delete(o.m, old.Value.(*openerEntry).k)
	}
	o.mu.Unlock()
	e.r, e.err = decapsulate(priv, enc)
	close(e.ready)
	if e.err != nil {
		o.mu.Lock()
		if el, ok := o.m[k]; ok && el.Value == e {
			o.lru.Remove(el)
			delete(o.m, k)
		}
		o.mu.Unlock()
	}
	return e.r, e.err
}
