package verify_test

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

var benchOnce struct {
	sync.Once
	chain *bundletest.Chain
	raw   []byte
}

// benchBundle is one bundle of 1000 records of about 1 KiB, most of them
// exports with a 4 KiB payload each.
func benchBundle(b *testing.B) (*bundletest.Chain, []byte) {
	benchOnce.Do(func() {
		c, err := bundletest.NewChain(b.Context(), nil, 1, bundletest.Options{Records: 1000, RecordSize: 1024, PayloadSize: 4096})
		if err != nil {
			b.Fatal(err)
		}
		raw, err := c.Bundles[0].Bytes()
		if err != nil {
			b.Fatal(err)
		}
		benchOnce.chain, benchOnce.raw = c, raw
	})
	return benchOnce.chain, benchOnce.raw
}

// reportCPU adds the CPU time per op and the MB/s it implies, next to
// the wall-clock figures.
func reportCPU(b *testing.B, start time.Duration, size int) {
	cpu := cpuTime() - start
	if cpu <= 0 || b.N == 0 {
		return
	}
	per := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(per, "cpu-ns/op")
	b.ReportMetric(float64(size)/per*1e3, "cpu-MB/s")
}

func BenchmarkVerify(b *testing.B) {
	c, raw := benchBundle(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if r := verify.Verify(c.Bundles[0], c.Trust, nil); !r.OK() {
			b.Fatal(r)
		}
	}
	reportCPU(b, start, len(raw))
}

func BenchmarkReadVerify(b *testing.B) {
	c, raw := benchBundle(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		bd, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		if r := verify.Verify(bd, c.Trust, nil); !r.OK() {
			b.Fatal(r)
		}
	}
	reportCPU(b, start, len(raw))
}

// BenchmarkSHA256 hashes the same bytes once: the yardstick for Verify.
func BenchmarkSHA256(b *testing.B) {
	_, raw := benchBundle(b)
	b.SetBytes(int64(len(raw)))
	start := cpuTime()
	for b.Loop() {
		sha256.Sum256(raw)
	}
	reportCPU(b, start, len(raw))
}

func BenchmarkParseRecord(b *testing.B) {
	c, _ := benchBundle(b)
	recs, _ := c.Bundles[0].Records()
	b.SetBytes(int64(len(recs[1])))
	for b.Loop() {
		if _, err := custody.ParseRecord(recs[1]); err != nil {
			b.Fatal(err)
		}
	}
}
