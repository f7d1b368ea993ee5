package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Key layout. One byte prefix, fixed-width big-endian numbers so that
// Badger's key order is numeric order.
//
//	'm'                    meta: size, last leaf (written in every log commit)
//	'r' || be64(seq)       record bytes
//	'h' || be64(index)     stored hash (tlog.StoredHashIndex order), in
//	                       journals written before packed hashes only
//	'i' || be64(seq)       interior hashes completed by record seq (hashes.go)
//	'l'                    layout: hashes are packed from this size on
//	'p' || digest          payload bytes
//	's' || digest          payload split from its shared prefix
//	                       (payloadsplit.go): version 1, the prefix's id
//	                       (SHA-256 of its bytes), the rest of the bytes
//	'w' || id              a shared payload prefix (a payload cipher
//	                       window's encapsulated key), by its SHA-256
//	't' || digest          payload tombstone (value: purge time, be64 unix ns);
//	                        counts only where the payload ('p' or 's') is absent
//	'c' || be64(size)      checkpoint bytes
//	'o'                    unused (outbox entries are files: outbox.go)
//	'k' || key             idempotency key (value: be64(seq)), written in the
//	                       same commit as record seq
//	'f'                    format marker (see crypt.go)
//	'e'                    sealing epoch, be64 (epoch.go); absent: 1
//
// Every value is sealed and the digest and idempotency keys are HMACs
// when the journal has an encryption key (crypt.go).
const (
	pfxMeta       = 'm'
	pfxRecord     = 'r'
	pfxHash       = 'h'
	pfxPayload    = 'p'
	pfxSplit      = 's'
	pfxPrefix     = 'w'
	pfxTombstone  = 't'
	pfxCheckpoint = 'c'
	pfxOutbox     = 'o' // outbox entries before format v2; now files (outbox.go)
	pfxIdemKey    = 'k'
	pfxFormat     = 'f'
)

var metaKey = []byte{pfxMeta}

func u64Key(pfx byte, n uint64) []byte {
	k := make([]byte, 9)
	k[0] = pfx
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

func recordKey(seq uint64) []byte   { return u64Key(pfxRecord, seq) }
func hashKey(index int64) []byte    { return u64Key(pfxHash, uint64(index)) }
func checkpointKey(n uint64) []byte { return u64Key(pfxCheckpoint, n) }

// meta is the journal state written atomically with every log commit, so
// Open reads it instead of rescanning.
type meta struct {
	Size     uint64
	LastLeaf [32]byte
}

const (
	metaVersion = 1
	metaLen     = 1 + 8 + 32 + 32 // version, size, last leaf, sha256 of the rest
)

func (m meta) encode() []byte {
	b := make([]byte, 0, metaLen)
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint64(b, m.Size)
	b = append(b, m.LastLeaf[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeMeta parses the meta value read from disk.
func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) != metaLen {
		return m, fmt.Errorf("meta is %d bytes, want %d", len(b), metaLen)
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("meta version %d, want %d", b[0], metaVersion)
	}
	sum := sha256.Sum256(b[:metaLen-32])
	if [32]byte(b[metaLen-32:]) != sum {
		return m, fmt.Errorf("meta checksum mismatch")
	}
	m.Size = binary.BigEndian.Uint64(b[1:9])
	copy(m.LastLeaf[:], b[9:41])
	if m.Size == 0 && m.LastLeaf != ([32]byte{}) {
		return m, fmt.Errorf("meta of empty journal has a last leaf")
	}
	return m, nil
}
