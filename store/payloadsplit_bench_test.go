package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// BenchmarkAppendCipherFile: synced appends from 8 writers, encrypted at
// rest, each a 1 KiB record and the payload file of a 1 KiB export
// encrypted with payload cipher version 2 (a window's 1120-byte
// encapsulated key, the same for 1024 payloads, then 1040 bytes of its
// own), journaled whole and split from its window's key. Besides CPU per
// append it reports the key and value bytes committed per append, which
// do not depend on the machine's load.
func BenchmarkAppendCipherFile(b *testing.B) {
	for _, split := range []bool{false, true} {
		name := "whole"
		if split {
			name = "split"
		}
		b.Run(name, func(b *testing.B) {
			benchMemoryLimit(b)
			j, err := Open(context.Background(), Options{Dir: b.TempDir(), Logger: testLogger(b), EncryptionKey: make([]byte, 32)})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			var n atomic.Int64
			runWriters(b, 8, func() error {
				i := n.Add(1)
				file := make([]byte, 1120+1040)
				binary.BigEndian.PutUint64(file, uint64(i/1024)) // the window
				binary.BigEndian.PutUint64(file[1120:], uint64(i))
				p := Payload{Digest: sha256.Sum256(file), Data: file}
				if split {
					p.Prefix = 1120
				}
				_, err := j.Append(context.Background(), Entry{Build: record1K, Payloads: []Payload{p}})
				return err
			})
			b.ReportMetric(float64(j.committed.Load())/float64(b.N), "journal-bytes/append")
			reportCommits(b, j)
		})
	}
}
