package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// SealResult describes one seal.
type SealResult struct {
	ID         string // outbox id: the checkpoint size, zero-padded
	Checkpoint merkle.Checkpoint
	FirstSeq   uint64
	Records    int
	Counter    uint64
	Digest     [32]byte // SHA-256 of the bundle file
	Bytes      int      // size of the bundle file, stored in the outbox under ID
	Duration   time.Duration
}

// OutboxID is the outbox key of the bundle sealing a tree of size n: sorted
// by size when compared as strings.
func OutboxID(n uint64) string { return fmt.Sprintf("%020d", n) }

// tpmSigner signs DSSE digests with the TPM-resident key.
type tpmSigner struct {
	t   TPM
	id  string
	obs Observer
}

func (s tpmSigner) KeyID() string { return s.id }
func (s tpmSigner) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	sig, err := s.t.Sign(ctx, digest)
	if err != nil && ctx.Err() == nil {
		s.obs.TPMError("sign")
	}
	return sig, err
}

// DefaultSealMaxBytes is the default bound on the records and payloads
// one bundle holds (Options.SealMaxBytes).
const DefaultSealMaxBytes = 4 << 20

// maxSealRecords bounds the records of one bundle whatever their size: a
// record and its payload are two files of the bag, and bundle.DefaultLimits
// allows 100,000.
const maxSealRecords = 32_768

// maxSealScratch bounds the buffer a seal keeps for the next one: the
// small bundles of a quiet agent reuse it; a larger one is dropped after
// its seal. Kept, a full bundle's megabytes stayed in the live heap
// between seals, and under sustained load (the heap at the memory limit,
// agentd.MemoryLimit) that left the collector half the room to run in.
const maxSealScratch = 1 << 20

// errBundleFull stops the record scan of a seal at its bound.
var errBundleFull = errors.New("bundle full")

// Seal seals the records journaled since the last seal, up to
// Options.SealMaxBytes of records and payloads (at least one record): it
// builds the checkpoint, increments the TPM NV counter, quotes the PCRs
// with nonce = SHA-256(checkpoint), signs the statement with the TPM key,
// stores the bundle in the outbox and the checkpoint, then journals a
// `seal` record. It returns (nil, nil) when nothing is pending. When
// records are left past the bound, the sealer (Start) is woken for the
// next bundle; SealAll seals until nothing is pending. TPM commands per
// seal are a constant: one increment, one quote, one signature.
func (c *Core) Seal(ctx context.Context) (*SealResult, error) {
	c.sealMu.Lock()
	defer c.sealMu.Unlock()
	c.pcrAuthCheck(ctx)
	c.maybeRotate(ctx)
	res, err := c.seal(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		c.sealErr.Store(&err)
		c.obs.SealFailed()
	case err == nil:
		c.sealErr.Store(nil)
	}
	if res != nil {
		c.obs.Sealed(res.Duration)
		c.lastSeal.Store(&SealInfo{Size: res.Checkpoint.Size, Time: c.opts.Now().UTC(), Counter: res.Counter,
			Bundle: res.ID, Digest: wire.FormatHash(res.Digest)})
		c.cache.sealed(res.Checkpoint.Size)
		c.maybeWake(c.j.Size())
	}
	return res, err
}

// SealAll seals until nothing is pending and returns how many bundles it
// sealed (on an error, how many before it).
func (c *Core) SealAll(ctx context.Context) (int, error) {
	n := 0
	for {
		res, err := c.Seal(ctx)
		if err != nil || res == nil {
			return n, err
		}
		n++
	}
}

func (c *Core) seal(ctx context.Context) (*SealResult, error) {
	start := time.Now()

	// A bundle of a failed seal may be in the outbox, and sent: sealing
	// from the older checkpoint again would rewrite history in the
	// archive's eyes (archive.fork). Adopt it first, as Open does.
	if c.outboxAhead.Load() {
		if err := c.recoverOutbox(ctx); err != nil {
			return nil, fmt.Errorf("agent: seal: %w", err)
		}
		c.outboxAhead.Store(false)
	}
	prevSize, prevNote, err := c.j.LastCheckpoint()
	switch {
	case errors.Is(err, store.ErrNotFound):
		prevSize, prevNote = 0, nil
	case err != nil:
		return nil, fmt.Errorf("agent: seal: %w", err)
	}
	end := c.j.Size()
	if pending, err := c.pending(prevSize, end); err != nil || !pending {
		return nil, err
	}
	in := bundle.SealInput{Origin: c.origin, Time: c.opts.Now(), Payloads: map[[32]byte][]byte{}, Encrypted: map[[32]byte][]byte{}}
	var bytes int64
	take := func(seq uint64, rec []byte, kept []store.Payload, file payloadFile) error {
		if seq > prevSize && (bytes+int64(len(rec)) > c.opts.SealMaxBytes || len(in.Records) >= maxSealRecords) {
			return errBundleFull
		}
		if seq == prevSize {
			r, err := custody.ParseRecord(rec)
			if err != nil {
				return err
			}
			in.PreviousLeaf = r.Prev
		}
		in.Records = append(in.Records, rec)
		n, err := c.collectPayload(rec, kept, file, in.Payloads, in.Encrypted)
		bytes += int64(len(rec)) + n
		return err
	}
	// Records journaled since the last seal come from memory where the
	// cache has them; each run of records it does not have (it was full,
	// or they were journaled before a restart) is read from the journal.
	// A record whose append has not returned yet ends the bundle.
	err = nil
	for seq := prevSize; seq < end && err == nil; {
		if cr, ok := c.cache.get(seq); ok {
			err = take(seq, cr.rec, cr.payloads, cr.file)
			seq++
			continue
		}
		if len(in.Records) > 0 && c.cache.coming(seq) {
			break // an append still in progress: sealed next time
		}
		miss := seq + 1
		for miss < end && !c.cache.has(miss) {
			miss++
		}
		err = c.j.Records(ctx, seq, miss, func(seq uint64, rec []byte) error { return take(seq, rec, nil, payloadFile{}) })
		seq = miss
	}
	if err != nil && !errors.Is(err, errBundleFull) {
		return nil, fmt.Errorf("agent: seal: records: %w", err)
	}
	size := prevSize + uint64(len(in.Records))
	root, err := c.j.Root(size)
	if err != nil {
		return nil, fmt.Errorf("agent: seal: %w", err)
	}
	cp := merkle.Checkpoint{Origin: c.origin, Size: size, Root: root}
	body := cp.Marshal()
	in.Checkpoint = body
	if prevNote != nil {
		in.PreviousCheckpoint = prevNote
		if in.Consistency, err = c.j.ConsistencyProof(prevSize, size); err != nil {
			return nil, fmt.Errorf("agent: seal: %w", err)
		}
		if in.RangeHashes, err = c.j.RangeHashes(prevSize); err != nil {
			return nil, fmt.Errorf("agent: seal: %w", err)
		}
	}

	if err := c.keyInForce(ctx); err != nil {
		return nil, fmt.Errorf("agent: seal: %w", err)
	}
	// The TPM part: a constant number of commands.
	counter, err := c.t.IncrementCounter(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.obs.TPMError("counter")
		}
		return nil, fmt.Errorf("agent: seal: nv counter: %w", err)
	}
	nonce := sha256.Sum256(body)
	q, err := c.t.Quote(ctx, nonce[:])
	if err != nil {
		if ctx.Err() == nil {
			c.obs.TPMError("quote")
		}
		return nil, fmt.Errorf("agent: seal: quote: %w", err)
	}
	id := c.t.Identity()
	in.Counter = counter
	in.Quote = bundle.Quote{Attest: q.Attest, Signature: q.Signature, PCRs: q.PCRs, Values: q.Values,
		Files: bundle.QuoteFiles{Msg: q.Files.Msg, Sig: q.Files.Sig, PCRs: q.Files.PCRs}}
	in.Identity = BundleIdentity(id)
	in.Signer = tpmSigner{t: c.t, id: id.KeyID, obs: c.obs}
	b, err := bundle.Seal(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("agent: seal: %w", err)
	}
	// The tar goes into a buffer kept between seals (under sealMu) while
	// bundles are small (maxSealScratch).
	raw, err := b.AppendTo(c.sealBuf[:0])
	if err != nil {
		return nil, fmt.Errorf("agent: seal: %w", err)
	}
	if cap(raw) <= maxSealScratch {
		c.sealBuf = raw
	}
	res := &SealResult{
		ID: OutboxID(size), Checkpoint: cp, FirstSeq: prevSize, Records: int(size - prevSize),
		Counter: counter, Digest: sha256.Sum256(raw), Bytes: len(raw),
	}
	// Outbox first, checkpoint second: a crash in between leaves an outbox
	// bundle newer than the last checkpoint, which Open adopts.
	if err := c.j.PutOutbox(ctx, res.ID, raw); err != nil {
		c.outboxAhead.Store(true) // it may be in place (fsutil.ErrNotDurable)
		return nil, fmt.Errorf("agent: seal: outbox: %w", err)
	}
	c.sealedDigest(res.ID, res.Digest)
	if err := c.j.PutCheckpoint(ctx, size, body); err != nil {
		c.outboxAhead.Store(true) // a cancelled stop, a failed write
		return nil, fmt.Errorf("agent: seal: checkpoint: %w", err)
	}
	if err := c.journalSeal(ctx, res, id.KeyID); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	if _, err := c.CheckOutbox(ctx); err != nil {
		c.log.Warn("outbox quota check failed", "err", err)
	}
	if c.opts.AfterSeal != nil {
		c.opts.AfterSeal()
	}
	c.log.Info("sealed", "size", size, "records", res.Records, "counter", counter,
		"bundle", wire.FormatHash(res.Digest), "bytes", res.Bytes, "took", res.Duration)
	return res, nil
}

// pending reports whether records since the last checkpoint need a seal.
// Bookkeeping records (the `seal` record of the last seal, `delivery.receipt`
// and `archive.checkpoint` records of receipts coming back) are not enough
// on their own: they are
// sealed with whatever comes next, or the sealer and the sync would chase
// each other's tail, one bundle per round.
func (c *Core) pending(prevSize, size uint64) (bool, error) {
	switch {
	case size == prevSize:
		return false, nil
	case prevSize == 0 || size-prevSize > maxBookkeeping:
		return true, nil
	}
	only := true
	err := c.j.Records(context.Background(), prevSize, size, func(seq uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		if r.Type != custody.TypeSeal && r.Type != custody.TypeDeliveryReceipt && r.Type != custody.TypeArchiveCheckpoint {
			only = false
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("agent: seal: %w", err)
	}
	return !only, nil
}

// maxBookkeeping bounds the records pending looks at: more than that many
// records pending always need a seal.
const maxBookkeeping = 64

func (c *Core) journalSeal(ctx context.Context, res *SealResult, keyID string) error {
	_, err := c.Append(ctx, custody.TypeSeal, custody.Actor{Kind: "agent", ID: keyID}, map[string]any{
		"checkpoint": map[string]any{"size": res.Checkpoint.Size, "root": wire.FormatHash(res.Checkpoint.Root)},
		"counter":    res.Counter,
		"bundle":     wire.FormatHash(res.Digest),
		"keyId":      keyID,
	}, nil)
	if err != nil {
		return fmt.Errorf("agent: journal seal: %w", err)
	}
	return nil
}

// collectPayload adds the payload file an export record names (into
// plain, or into enc for a ciphertext), unless purged or already in, and
// returns the bytes it added. kept are the payloads the record was
// journaled with, when known (the seal cache); others are read from the
// journal. file is the payload file the record names when its builder
// said (the seal cache); else the record is parsed for it.
func (c *Core) collectPayload(rec []byte, kept []store.Payload, file payloadFile, plain, enc map[[32]byte][]byte) (int64, error) {
	if !file.known {
		var err error
		if file.digest, file.encrypted, file.has, err = custody.RecordPayloadFile(rec); err != nil {
			return 0, err
		}
	}
	if !file.has {
		return 0, nil
	}
	d, encrypted := file.digest, file.encrypted
	into := plain
	if encrypted {
		into = enc
	}
	if _, dup := into[d]; dup {
		return 0, nil
	}
	for _, p := range kept {
		if p.Digest == d {
			into[d] = p.Data
			return int64(len(p.Data)), nil
		}
	}
	data, err := c.j.Payload(d)
	switch {
	case errors.Is(err, store.ErrPurged):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("payload %s: %w", wire.FormatHash(d), err)
	}
	into[d] = data
	return int64(len(data)), nil
}

// BundleIdentity converts a TPM identity into the key material a bundle
// carries (bundle does not import tpm).
func BundleIdentity(id tpm.Identity) custody.Identity {
	return custody.Identity{
		EKPublic: id.EKPublic, EKCert: id.EKCert, AKPublic: id.AKPublic,
		SigningPublic: id.SigningPublic,
		Certify:       custody.Attestation{Attest: id.Certify.Attest, Signature: id.Certify.Signature},
		PCRs:          id.PCRs, PCRValues: id.PCRValues, PolicyDigest: id.PolicyDigest, KeyID: id.KeyID,
		PCRPolicyKey: id.PCRPolicyKey,
	}
}

// recoverOutbox adopts outbox bundles sealed past the last stored
// checkpoint (a crash between PutOutbox and PutCheckpoint). A bundle's id
// is OutboxID of its checkpoint's size, so only the bundles whose id
// names a size past that checkpoint (or that is not such a number) are
// read: an outbox that grew over a long offline spell does not slow the
// start.
func (c *Core) recoverOutbox(ctx context.Context) error {
	last, _, err := c.j.LastCheckpoint()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("agent: recover: %w", err)
	}
	var buf []byte
	return c.j.OutboxIDs(ctx, func(id string) error {
		if n, ok := parseOutboxID(id); ok && n <= last {
			return nil
		}
		data, ok, err := c.j.OutboxGetInto(ctx, id, &buf)
		if err != nil {
			return fmt.Errorf("agent: recover: outbox %s: %w", id, err)
		}
		if !ok {
			return nil // deleted meanwhile
		}
		b, err := bundle.Read(bytes.NewReader(data), bundle.DefaultLimits)
		if err != nil {
			return fmt.Errorf("agent: recover: outbox %s: %w", id, err)
		}
		_, st, err := b.Statement()
		if err != nil {
			return fmt.Errorf("agent: recover: outbox %s: %w", id, err)
		}
		cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			return fmt.Errorf("agent: recover: outbox %s: %w", id, err)
		}
		if cp.Size <= last {
			return nil
		}
		c.log.Warn("adopting sealed bundle whose checkpoint was not recorded", "id", id, "size", cp.Size)
		if err := c.j.PutCheckpoint(ctx, cp.Size, cp.Marshal()); err != nil {
			return fmt.Errorf("agent: recover: %w", err)
		}
		last = cp.Size
		return nil
	})
}

// parseOutboxID returns the checkpoint size an OutboxID names.
func parseOutboxID(id string) (uint64, bool) {
	if len(id) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil && OutboxID(n) == id
}

// Start runs the sealer until ctx is done: it seals every SealInterval, and
// at once when SealEvery records are pending. A failing seal is logged once
// and retried with capped exponential backoff; recovery is logged once. On
// return it seals what is pending, with a fresh context bounded by 30s.
func (c *Core) Start(ctx context.Context) {
	tick := time.NewTicker(c.opts.SealInterval)
	defer tick.Stop()
	backoff, failing := time.Duration(0), false
	for {
		var retry <-chan time.Time
		if backoff > 0 {
			retry = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := c.SealAll(fctx); err != nil {
				c.log.Error("final seal failed", "err", err)
			}
			cancel()
			return
		case <-tick.C:
		case <-c.wake:
		case <-retry:
		}
		_, err := c.Seal(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			continue
		case err != nil:
			if !failing {
				c.log.Error("seal failed; journaling continues, retrying", "err", err)
				if pm := (*tpm.PCRMismatchError)(nil); errors.As(err, &pm) {
					c.alarm(AlarmPCRAuthorization, -1, "sealing stopped, the PCRs moved: an operator's PCR authorization is needed: "+err.Error())
				}
			}
			failing = true
			backoff = min(max(2*backoff, time.Second), 5*time.Minute)
		case failing:
			c.log.Info("seal recovered")
			failing, backoff = false, 0
		}
	}
}
