package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Split payloads. A payload whose first Payload.Prefix bytes are shared
// by many payloads (the encapsulated key of a payload cipher window, the
// same for up to a thousand ciphertexts) is journaled in two parts: the
// prefix once, under 'w' || SHA-256(prefix), and the payload as
// 's' || digest holding splitVersion, the prefix's id and the rest of
// its bytes. Payload joins them again and checks the joined bytes
// against the digest, so readers see the same bytes in either shape.
// Payloads journaled whole ('p' || digest, the only shape of journals
// written before splitting) are read as before; both shapes coexist, and
// the same bytes may be stored in both (the sequencer's check for bytes
// already stored reads only the key of the shape it writes): Payload
// reads either, PurgePayload deletes both.
//
// Crash safety: a prefix the journal does not hold yet is written in the
// same Badger transaction as the first payload that refers to it (a
// request never straddles two transactions), and a prefix is never
// deleted (purging a payload deletes its own key only), so a split
// payload never outlives, nor is committed without, its prefix.

// splitVersion is the first byte of a split payload's value.
const splitVersion = 1

// splitHeader is the size of a split payload's value before the rest of
// its bytes: the version and the prefix's id.
const splitHeader = 1 + sha256.Size

// encodeSplit returns the value of a split payload: splitVersion, the
// prefix's id and rest.
func encodeSplit(id [32]byte, rest []byte) []byte {
	v := make([]byte, 0, splitHeader+len(rest))
	v = append(v, splitVersion)
	v = append(v, id[:]...)
	return append(v, rest...)
}

// parseSplit parses the value of a split payload read from disk: the id of
// its prefix and the rest of its bytes (aliasing v).
func parseSplit(v []byte) (id [32]byte, rest []byte, err error) {
	if len(v) < splitHeader {
		return id, nil, fmt.Errorf("split payload of %d bytes, want at least %d", len(v), splitHeader)
	}
	if v[0] != splitVersion {
		return id, nil, fmt.Errorf("split payload version %d, want %d", v[0], splitVersion)
	}
	return [32]byte(v[1:splitHeader]), v[splitHeader:], nil
}

// appendPayloadKVs appends to kvs the writes that journal p (pk its
// whole-shape key): one whole payload, or a split payload and, when the
// journal does not hold its prefix yet (prefixStored), the prefix.
// newPrefix is the id of the prefix written (zero and false when none).
func (j *Journal) appendPayloadKVs(kvs []kv, p Payload, pk []byte) (_ []kv, newPrefix [32]byte, wrote bool) {
	if p.Prefix <= 0 {
		return append(kvs, kv{key: pk, val: p.Data}), newPrefix, false
	}
	prefix, rest := p.Data[:p.Prefix], p.Data[p.Prefix:]
	id := j.prefixID(prefix)
	kvs = append(kvs, kv{key: payloadKey(p, pk), val: encodeSplit(id, rest)})
	if !j.prefixStored(id) {
		j.view.prefixes[id] = true
		kvs = append(kvs, kv{key: j.c.digestKey(pfxPrefix, id), val: prefix})
		return kvs, id, true
	}
	return kvs, newPrefix, false
}

// prefixID is SHA-256 of prefix, remembered for the last prefix seen
// (consecutive payloads of a window share it). Sequencer goroutine only.
func (j *Journal) prefixID(prefix []byte) [32]byte {
	if j.lastPrefix == nil || !bytes.Equal(j.lastPrefix, prefix) {
		j.lastPrefix = bytes.Clone(prefix)
		j.lastPrefixID = sha256.Sum256(prefix)
	}
	return j.lastPrefixID
}

// prefixStored reports whether the prefix with id is stored or built since
// the view was opened. Prefixes are never deleted, so what a view found
// stays true, for later views too: the last prefix found is remembered
// across views, so the payloads of a window read it once, not once a
// view (a view lasts one commit when appends come one at a time).
func (j *Journal) prefixStored(id [32]byte) bool {
	v := j.view
	if v.prefixes[id] {
		return true
	}
	if id == j.storedPrefix && id != ([32]byte{}) {
		v.prefixes[id] = true
		return true
	}
	j.prefixReads.Add(1)
	if _, err := v.txn.Get(j.c.digestKey(pfxPrefix, id)); err == nil {
		v.prefixes[id] = true
		j.storedPrefix = id
		return true
	}
	return false
}

// readPayload returns the payload with digest from txn, whole or split
// (joined again with its prefix). badger.ErrKeyNotFound when neither is
// stored; a *CorruptError when a split payload is malformed, its prefix is
// missing, or the joined bytes do not hash to digest.
func (j *Journal) readPayload(txn *badger.Txn, digest [32]byte) ([]byte, error) {
	data, err := j.c.get(txn, j.c.digestKey(pfxPayload, digest))
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return data, err
	}
	v, err := j.c.get(txn, j.c.digestKey(pfxSplit, digest))
	if err != nil {
		return nil, err
	}
	corrupt := func(what string) error {
		return &CorruptError{What: fmt.Sprintf("payload %x: %s", digest[:8], what)}
	}
	id, rest, err := parseSplit(v)
	if err != nil {
		return nil, corrupt(err.Error())
	}
	prefix, err := j.c.get(txn, j.c.digestKey(pfxPrefix, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, corrupt(fmt.Sprintf("prefix %x missing", id[:8]))
	}
	if err != nil {
		return nil, err
	}
	data = make([]byte, 0, len(prefix)+len(rest))
	data = append(append(data, prefix...), rest...)
	if sha256.Sum256(data) != digest {
		return nil, corrupt("joined bytes do not match the digest")
	}
	return data, nil
}

// payloadKeys returns the keys the payload with digest is stored under in
// txn: none, its whole or its split key, or both (the same bytes
// journaled in either shape: the sequencer checks only the shape it
// writes, see payloadStored).
func (j *Journal) payloadKeys(txn *badger.Txn, digest [32]byte) ([][]byte, error) {
	var keys [][]byte
	for _, pfx := range [...]byte{pfxPayload, pfxSplit} {
		k := j.c.digestKey(pfx, digest)
		_, err := txn.Get(k)
		if err == nil {
			keys = append(keys, k)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, err
		}
	}
	return keys, nil
}

// payloadKey is the key payload p is journaled under, from pk, its
// whole-shape key: its split key when it names a prefix, else pk.
func payloadKey(p Payload, pk []byte) []byte {
	if p.Prefix > 0 {
		return renamePrefix(pk, pfxSplit)
	}
	return pk
}
