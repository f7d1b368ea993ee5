// Package bundletest builds valid chains of sealed bundles with a software
// TPM (tpm/attest/attesttest) and turns them into precisely tampered ones.
// The tamper table (Cases) names, for each attack, the verification check
// that must catch it.
//
// To rerun the table on bundles made by a real TPM, adapt the device to
// Device (KeyID, Sign, Quote, IncrementCounter, Identity) and build the
// chain with it:
//
//	c, err := bundletest.NewChain(ctx, tpmDevice, 2, bundletest.Options{})
//	for _, cs := range bundletest.Cases {
//		b, prev, err := c.Tamper(ctx, cs) // ErrUnsupported: needs the software TPM
//		rep := verify.Verify(b, c.Trust, prev)
//		// cs.Want must be among rep.Failed()
//	}
package bundletest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/attest/attesttest"
)

// Device is what sealing (and an attacker holding the device) can do with
// the TPM.
type Device interface {
	dsse.Signer
	Quote(ctx context.Context, nonce []byte) (bundle.Quote, error)
	IncrementCounter(ctx context.Context) (uint64, error)
	Identity() custody.Identity
}

// Soft adapts an attesttest.TPM to Device.
type Soft struct{ *attesttest.TPM }

// Quote quotes the software TPM's PCRs.
func (s Soft) Quote(ctx context.Context, nonce []byte) (bundle.Quote, error) {
	if err := ctx.Err(); err != nil {
		return bundle.Quote{}, err
	}
	a, sig := s.TPM.Quote(nonce)
	values := map[int][]byte{}
	for _, p := range s.PCRs {
		values[p] = append([]byte(nil), s.Values[p]...)
	}
	return bundle.Quote{Attest: a, Signature: sig, PCRs: append([]int(nil), s.PCRs...), Values: values}, nil
}

// IncrementCounter bumps the NV counter.
func (s Soft) IncrementCounter(ctx context.Context) (uint64, error) {
	return s.TPM.IncrementCounter(), ctx.Err()
}

// Identity returns the public material as custody.Identity.
func (s Soft) Identity() custody.Identity {
	msg, sig := s.Certify(s.SigningPublic())
	bound := map[int][]byte{}
	for _, p := range s.PCRs {
		bound[p] = append([]byte(nil), s.Bound[p]...)
	}
	return custody.Identity{
		EKPublic: s.EKPublic(), AKPublic: s.AKPublic(), SigningPublic: s.SigningPublic(),
		Certify: custody.Attestation{Attest: msg, Signature: sig},
		PCRs:    append([]int(nil), s.PCRs...), PCRValues: bound, PolicyDigest: s.PolicyDigest(), KeyID: s.KeyID(),
	}
}

// NewSoft returns a software device.
func NewSoft() (Soft, error) {
	t, err := attesttest.New()
	return Soft{t}, err
}

// Options shape a chain.
type Options struct {
	Site, Device string // default "site1", "dev1"
	Records      int    // records per bundle, default 8
	PayloadSize  int    // bytes per export payload, default 256
	RecordSize   int    // approximate bytes per record (padding in purpose), default 0
	Start        time.Time
	// KeyCreate makes the second record of the chain the key.create of
	// the device's signing key, as the agent journals it.
	KeyCreate bool
	// Policy is the policy digest exports name; default the SHA-256 of
	// "policy v1".
	Policy string
	// ContentKey, when set, seals every export payload to it
	// (bundle/payloadcipher): the bundle carries .hpke files only.
	ContentKey *payloadcipher.PublicKey
	// CipherV1 seals with payload cipher version 1 (one encapsulation
	// per payload) instead of version 2, as agents did before it.
	CipherV1 bool
	// CipherWindow is the most payloads one version 2 window seals
	// (payloadcipher.DefaultWindowPayloads when 0).
	CipherWindow int
}

// Chain is a device, its trust material and the bundles sealed so far with
// the state each left.
type Chain struct {
	Opts     Options
	Dev      Device
	Identity custody.Identity
	Trust    *trustfile.Trust
	Bundles  []*bundle.Bundle
	States   []*verify.State

	// Attacker is another device an attacker fully controls (its own keys
	// and AK), used by the key-substitution cases.
	Attacker Device

	log    memLog
	clock  time.Time
	queued []func(*custody.Record) // records that lead the next bundle (rotate.go)
	sealer *payloadcipher.Sealer   // version 2 windows, made at the first encrypted payload
}

// NewChain seals bundles of opts.Records records each with dev (a fresh
// software TPM when nil) and verifies them in order.
func NewChain(ctx context.Context, dev Device, bundles int, opts Options) (*Chain, error) {
	if opts.Site == "" {
		opts.Site, opts.Device = "site1", "dev1"
	}
	if opts.Records == 0 {
		opts.Records = 8
	}
	if opts.PayloadSize == 0 {
		opts.PayloadSize = 256
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	}
	var err error
	if dev == nil {
		if dev, err = NewSoft(); err != nil {
			return nil, err
		}
	}
	att, err := NewSoft()
	if err != nil {
		return nil, err
	}
	c := &Chain{Opts: opts, Dev: dev, Attacker: att, clock: opts.Start}
	c.Identity = dev.Identity()
	if c.Trust, err = trustfile.NewTrust(opts.Site, opts.Device, c.Identity); err != nil {
		return nil, err
	}
	for range bundles {
		b, err := c.Next(ctx, opts.Records)
		if err != nil {
			return nil, err
		}
		var prev *verify.State
		if n := len(c.States); n > 0 {
			prev = c.States[n-1]
		}
		r := verify.Verify(b, c.Trust, prev)
		if !r.OK() {
			return nil, fmt.Errorf("bundletest: fresh bundle %d does not verify:\n%s", len(c.Bundles), r)
		}
		c.Bundles = append(c.Bundles, b)
		c.States = append(c.States, r.State)
	}
	return c, nil
}

// DeviceName is "<site>/<device>".
func (c *Chain) DeviceName() string { return c.Opts.Site + "/" + c.Opts.Device }

// Next journals n more records (an export with a payload each, a purge
// now and then) and seals them. It does not verify or store the bundle.
func (c *Chain) Next(ctx context.Context, n int) (*bundle.Bundle, error) {
	prevSize := uint64(len(c.log.records))
	var prevCP []byte
	var rng [][32]byte
	if prevSize > 0 {
		prevCP = c.log.checkpoint(c.origin(), prevSize)
		rng = merkle.CompactRange(c.log.leaves[:prevSize])
	}
	prevLeaf := c.log.last()
	payloads := map[[32]byte][]byte{}
	encrypted := map[[32]byte][]byte{}
	stored := map[[32]byte][32]byte{} // plaintext digest -> ciphertext digest
	var recs [][]byte
	for i := range n {
		seq := uint64(len(c.log.records))
		c.clock = c.clock.Add(1500 * time.Microsecond)
		r := custody.Record{Seq: seq, Time: c.clock, Device: c.DeviceName(), Prev: c.log.last()}
		switch {
		case len(c.queued) > 0:
			c.queued[0](&r)
			c.queued = c.queued[1:]
		case seq == 1 && c.Opts.KeyCreate:
			r.Type, r.Actor = custody.TypeKeyCreate, custody.Actor{Kind: "agent", ID: c.Identity.KeyID}
			_ = r.SetBody(custody.NewKeyCreateBody(c.Identity))
		case seq == 0:
			r.Type, r.Actor = custody.TypeAgentStart, custody.Actor{Kind: "agent", ID: c.Identity.KeyID}
			_ = r.SetBody(map[string]string{"version": "test"})
		case i == n-1 && n > 3 && len(payloads) > 0:
			// Purge the first payload of this batch again (bytes gone, leaf kept).
			var d [32]byte
			for k := range payloads {
				d = k
				break
			}
			delete(payloads, d)
			delete(encrypted, stored[d])
			r.Type, r.Actor = custody.TypeRetentionPurge, custody.Actor{Kind: "operator", ID: "alice", Via: "cli"}
			_ = r.SetBody(custody.PurgeBody{Payloads: []string{wire.FormatHash(d)}, Reason: "test"})
		default:
			payload := make([]byte, c.Opts.PayloadSize)
			for j := range payload {
				payload[j] = byte(seq*7 + uint64(j))
			}
			copy(payload, fmt.Sprintf("export %d of %s", seq, c.DeviceName()))
			d := sha256.Sum256(payload)
			payloads[d] = payload
			pad := max(0, c.Opts.RecordSize-560)
			r.Type, r.Actor = custody.TypeExport, custody.Actor{Kind: "principal", ID: "n8n-reports", Via: "api"}
			e := custody.ExportBody{
				ExportID: fmt.Sprintf("exp-%06d", seq), App: "n8n", Workflow: "monthly-report",
				Purpose: "audit" + padding(pad), Schema: "report@2", Classification: "internal",
				Retention: "7y", Destination: "archive", Policy: cmp.Or(c.Opts.Policy, wire.FormatHash(sha256.Sum256([]byte("policy v1")))),
				Payload: custody.PayloadRef{Digest: wire.FormatHash(d), Size: int64(len(payload)), MediaType: "application/json", Canonicalization: "none"},
			}
			if c.Opts.ContentKey != nil {
				var ct []byte
				var err error
				if c.Opts.CipherV1 {
					ct, err = custody.EncryptPayloadV1(&e, r.Device, c.Opts.ContentKey, payload)
				} else {
					if c.sealer == nil {
						c.sealer = payloadcipher.NewSealer(c.Opts.CipherWindow, 0, nil)
					}
					ct, err = custody.EncryptPayload(&e, r.Device, c.sealer, c.Opts.ContentKey, payload)
				}
				if err != nil {
					return nil, err
				}
				delete(payloads, d)
				cd := sha256.Sum256(ct)
				encrypted[cd], stored[d] = ct, cd
				payloads[d] = nil // the purge case picks from payloads
			}
			_ = r.SetBody(e)
		}
		b, err := r.Marshal()
		if err != nil {
			return nil, err
		}
		c.log.append(b)
		recs = append(recs, b)
	}
	size := uint64(len(c.log.records))
	cp := c.log.checkpoint(c.origin(), size)
	var proof [][32]byte
	if prevSize > 0 {
		var err error
		if proof, err = c.log.consistency(prevSize, size); err != nil {
			return nil, err
		}
	}
	counter, err := c.Dev.IncrementCounter(ctx)
	if err != nil {
		return nil, err
	}
	nonce := sha256.Sum256(cp)
	q, err := c.Dev.Quote(ctx, nonce[:])
	if err != nil {
		return nil, err
	}
	return bundle.Seal(ctx, bundle.SealInput{
		Origin: c.origin(), Records: recs, Payloads: plainOnly(payloads), Encrypted: encrypted, Checkpoint: cp,
		PreviousCheckpoint: prevCP, Consistency: proof, RangeHashes: rng, PreviousLeaf: prevLeaf,
		Counter: counter, Quote: q, Identity: c.Identity, Signer: c.Dev, Time: c.clock,
	})
}

// plainOnly drops the placeholders of encrypted payloads.
func plainOnly(m map[[32]byte][]byte) map[[32]byte][]byte {
	for d, b := range m {
		if b == nil {
			delete(m, d)
		}
	}
	return m
}

func (c *Chain) origin() string { return merkle.Origin(c.DeviceName()) }

func padding(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

// memLog is an in-memory RFC 6962 log in the x/mod/sumdb/tlog layout.
type memLog struct {
	records [][]byte
	leaves  [][32]byte
	hashes  []tlog.Hash
}

func (l *memLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("bundletest: hash %d not stored", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *memLog) append(rec []byte) {
	hs, err := tlog.StoredHashes(int64(len(l.records)), rec, l)
	if err != nil {
		panic(err)
	}
	l.hashes = append(l.hashes, hs...)
	l.records = append(l.records, rec)
	l.leaves = append(l.leaves, merkle.LeafHash(rec))
}

func (l *memLog) last() [32]byte {
	if len(l.leaves) == 0 {
		return [32]byte{}
	}
	return l.leaves[len(l.leaves)-1]
}

func (l *memLog) checkpoint(origin string, size uint64) []byte {
	root, err := tlog.TreeHash(int64(size), l)
	if err != nil {
		panic(err)
	}
	return merkle.Checkpoint{Origin: origin, Size: size, Root: root}.Marshal()
}

func (l *memLog) consistency(oldSize, newSize uint64) ([][32]byte, error) {
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), l)
	if err != nil {
		return nil, err
	}
	out := make([][32]byte, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out, nil
}
