package verify

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// fileEntry is one file of the bundle with its SHA-256, computed once and
// shared by the manifests, the payload digests and the seal subject.
type fileEntry struct {
	name   string
	data   []byte
	sum    [32]byte
	set    uint8    // inManifest, inTagManifest or neither
	known  bool     // knownPath(name)
	enc    bool     // payload path ending in .hpke
	digest [32]byte // digest a payload path names
}

// Manifest a file belongs in.
const (
	inManifest    = 1
	inTagManifest = 2
)

// recordsPerTask is how many records one parallel task parses and hashes.
const recordsPerTask = 32

// prepare hashes every file once and decodes the inputs the checks share.
func (v *verifier) prepare() {
	v.classify()
	v.env, v.st, v.stErr = v.b.Statement()
	if v.stErr == nil {
		v.pred = &v.st.Predicate
		if cp, err := merkle.ParseCheckpoint([]byte(v.pred.Checkpoint)); err == nil {
			v.cp = &cp
		}
		if v.pred.PreviousCheckpoint == "" {
			v.prevCP = &merkle.Checkpoint{}
		} else if cp, err := merkle.ParseCheckpoint([]byte(v.pred.PreviousCheckpoint)); err == nil {
			v.prevCP = &cp
		}
		if a, err := attest.ParseAttest(v.pred.Quote.Attest); err == nil && a.Type == attest.TypeQuote {
			v.qa = a
		}
	}
	v.raw, v.recsErr = v.b.Records()
	v.hashAndParse()
	v.ak, _ = attest.ParsePublic(v.b.Files[bundle.PathAKPub])
	v.signing, _ = attest.ParsePublic(v.b.Files[bundle.PathSigningPub])
	if v.t == nil {
		v.trustErr = errors.New("no trust material")
	} else if v.t.AK() == nil || v.t.Signing() == nil {
		// Built without NewTrust or ParseTrust: check a copy, so that a
		// Trust shared by concurrent verifications is never written.
		tc := *v.t
		v.trustErr = tc.Check()
		v.t = &tc
	}
}

// classify lists the files with what the checks need to know of each
// name, decoding payload digests once.
func (v *verifier) classify() {
	files := v.b.Files
	v.files = make([]fileEntry, len(files))
	v.byName = make(map[string]int32, 17) // the fixed paths
	v.byDigest = make(map[[32]byte]payloadFiles, len(files))
	i := 0
	for name, data := range files {
		f := &v.files[i]
		f.name, f.data = name, data
		switch {
		case strings.HasPrefix(name, "data/"):
			f.set = inManifest
			v.nData++
			v.octets += len(data)
		case name != bundle.PathTagManifest:
			f.set = inTagManifest
			v.nTag++
		}
		if d, ok := bundle.PayloadDigestFromPath(name); ok {
			f.known, f.digest, f.enc = true, d, strings.HasSuffix(name, bundle.EncryptedPayload)
			v.pays = append(v.pays, int32(i))
			p, ok := v.byDigest[d]
			if !ok {
				p = payloadFiles{-1, -1}
			}
			if f.enc {
				p.enc = int32(i)
			} else {
				p.plain = int32(i)
			}
			v.byDigest[d] = p
		} else {
			f.known = bundle.FixedPath(name)
			v.byName[name] = int32(i)
		}
		i++
	}
}

// payloadFiles are the files that hold one payload, index in files or -1.
type payloadFiles struct{ plain, enc int32 }

// lookup returns the index in files of the named file.
func (v *verifier) lookup(name []byte) (int32, bool) {
	if rest, ok := bytes.CutPrefix(name, []byte(bundle.PayloadDir)); ok {
		var d [32]byte
		enc := bytes.HasSuffix(rest, []byte(bundle.EncryptedPayload))
		if enc {
			rest = rest[:len(rest)-len(bundle.EncryptedPayload)]
		}
		if strict.DecodeHex(d[:], rest) {
			p, ok := v.byDigest[d]
			i := p.plain
			if enc {
				i = p.enc
			}
			return i, ok && i >= 0
		}
	}
	i, ok := v.byName[string(name)]
	return i, ok
}

// sum returns the SHA-256 of the named file.
func (v *verifier) sum(name string) ([32]byte, bool) {
	i, ok := v.lookup([]byte(name))
	if !ok {
		return [32]byte{}, false
	}
	return v.files[i].sum, true
}

// hashAndParse hashes every file and every record (leaf hash) and parses
// the records, on all CPUs: large files first, then the records in runs,
// then the small files.
func (v *verifier) hashAndParse() {
	n := len(v.raw)
	v.leaves = make([][32]byte, n)
	recs := make([]custody.Record, n)
	errs := make([]error, n)
	// Offsets of the records in the file: consecutive lines.
	starts := make([]int, 0, (n+recordsPerTask-1)/recordsPerTask+1)
	off := 0
	for i, r := range v.raw {
		if i%recordsPerTask == 0 {
			starts = append(starts, off)
		}
		off += len(r) + 1
	}
	var large, small []int32
	for i := range v.files {
		if len(v.files[i].data) >= 64<<10 {
			large = append(large, int32(i))
		} else {
			small = append(small, int32(i))
		}
	}
	chunks := len(starts)
	tasks := len(large) + chunks + len(small)
	data := v.b.Files[bundle.PathRecords]
	parallel(tasks, func(w *worker, t int) {
		switch {
		case t < len(large):
			f := &v.files[large[t]]
			f.sum = sha256.Sum256(f.data)
		case t < len(large)+chunks:
			c := t - len(large)
			lo, hi := c*recordsPerTask, min(n, (c+1)*recordsPerTask)
			v.parseRecords(w, data, starts[c], lo, hi, recs, errs)
		default:
			f := &v.files[small[t-len(large)-chunks]]
			f.sum = sha256.Sum256(f.data)
		}
	})
	v.recs = make([]*custody.Record, n)
	for i := range recs {
		v.recs[i] = &recs[i]
	}
	for i, err := range errs {
		if err != nil && v.recsErr == nil {
			v.recsErr = fmt.Errorf("record %d: %w", i, err)
		}
	}
	if v.recsErr != nil {
		v.recs = nil
	}
}

// parseRecords leaf-hashes and parses records lo..hi-1, which start at
// offset start of data. Their string fields are cut from one copy of
// their lines.
func (v *verifier) parseRecords(w *worker, data []byte, start, lo, hi int, recs []custody.Record, errs []error) {
	end := start
	for i := lo; i < hi; i++ {
		end += len(v.raw[i]) + 1
	}
	// One copy of this chunk's text; the records' string fields are cut
	// from it.
	var text string
	if end-1 > start {
		text = string(data[start : end-1])
	}
	pos := 0
	for i := lo; i < hi; i++ {
		rb := v.raw[i]
		w.h.Reset()
		w.h.Write(leafPrefix)
		w.h.Write(rb)
		w.h.Sum(v.leaves[i][:0])
		errs[i] = w.dec.Parse(rb, text[pos:pos+len(rb)], &recs[i])
		pos += len(rb) + 1
	}
}

var leafPrefix = []byte{0}

// worker is the scratch space of one goroutine of parallel.
type worker struct {
	h   hash.Hash
	dec custody.RecordDecoder
}

// parallel runs fn(w, 0..n-1) on GOMAXPROCS goroutines, each taking the
// next index when done with one, so that large and small items spread
// evenly; w is the goroutine's own scratch space.
func parallel(n int, fn func(w *worker, i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	run := func() {
		w := &worker{h: sha256.New()}
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	if workers <= 1 {
		run()
		return
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
}
