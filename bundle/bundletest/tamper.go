package bundletest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Case is one attack on a good chain and the check that must catch it.
type Case struct {
	Kind   string // argument to Tamper
	Want   string // check name that must fail
	Target int    // index of the tampered bundle in the chain
	Prev   int    // index of the state to verify against, -1 for none
	Desc   string
}

// Cases is the tamper table. Unless said otherwise the attacker holds the
// device (can use its TPM signing key and take quotes) and recomputes the
// BagIt manifests, so the deeper check has to catch it.
var Cases = []Case{
	{"record.changed.unsigned", verify.CheckSealSubject, 1, 0, "record body changed, manifests recomputed, not re-signed"},
	{"record.changed", verify.CheckMerkleRoot, 1, 0, "record body changed, re-signed"},
	{"record.changed.retree", verify.CheckMerkleConsistency, 1, 0, "record changed, new root quoted and re-signed"},
	{"record.dropped", verify.CheckRecordsSequence, 1, 0, "a record removed, re-signed"},
	{"record.reordered", verify.CheckRecordsSequence, 1, 0, "two records swapped, re-signed"},
	{"record.inserted", verify.CheckRecordsSequence, 1, 0, "a forged record inserted, re-signed"},
	{"record.device", verify.CheckRecordsDevice, 1, 0, "a record claims another device, re-signed"},
	{"record.backdated", verify.CheckRecordsTime, 1, 0, "a record moved a year back, re-signed"},
	{"chain.broken", verify.CheckRecordsChain, 1, 0, "a record's prev changed, re-signed"},
	{"payload.changed", verify.CheckPayloadsDigest, 1, 0, "payload bytes changed, manifests recomputed"},
	{"payload.dropped", verify.CheckPayloadsDigest, 1, 0, "a referenced payload removed, manifests recomputed"},
	{"payload.extra", verify.CheckPayloadsReferenced, 1, 0, "an unreferenced payload added, manifests recomputed"},
	{"root.wrong", verify.CheckMerkleRoot, 1, 0, "checkpoint root replaced, quoted and re-signed"},
	{"signature.forged", verify.CheckSealSignature, 1, 0, "seal signature bytes changed"},
	{"signature.otherkey", verify.CheckSealSignature, 1, 0, "statement changed and signed by another key under the device key id"},
	{"key.swapped", verify.CheckKeysTrusted, 1, 0, "attacker's own AK, signing key and certification"},
	{"key.uncertified", verify.CheckKeysCertify, 1, 0, "attacker's signing key with the device's certification"},
	{"quote.otherpcrs", verify.CheckQuotePCRs, 1, 0, "quote over other PCR values (booted other kernel)"},
	{"quote.wrongnonce", verify.CheckQuoteNonce, 1, 0, "quote taken for another checkpoint"},
	{"quote.replayed", verify.CheckQuoteClock, 1, 0, "the previous bundle's quote reused"},
	{"quote.resetcount", verify.CheckQuoteResetCount, 1, 0, "quote with a lower resetCount"},
	{"quote.files", verify.CheckQuoteFiles, 1, 0, "attestation/quote.pcrs replaced, manifests recomputed"},
	{"counter.lower", verify.CheckCounterRising, 1, 0, "NV counter not above the previous seal's"},
	{"previous.forked", verify.CheckCheckpointPrevious, 1, 0, "previous checkpoint of the same size, other root"},
	{"previous.leaf", verify.CheckPreviousLeaf, 1, 0, "previous leaf changed in the statement"},
	{"bundle.replayed", verify.CheckCounterRising, 0, 0, "the first bundle sent again after itself"},
	{"bagit.manifest", verify.CheckBagItManifest, 1, 0, "payload changed, manifests left alone"},
	{"bagit.tagmanifest", verify.CheckBagItTagManifest, 1, 0, "keys/ak.pem changed, manifests left alone"},
	{"bagit.oxum", verify.CheckBagItStructure, 1, 0, "bag-info.txt Payload-Oxum changed"},
	{"origin.other", verify.CheckCheckpointOrigin, 1, 0, "checkpoint origin of another device, quoted and re-signed"},
}

// ErrUnsupported reports a tamper kind the chain's device cannot produce
// (for example a lower resetCount on a real TPM).
var ErrUnsupported = errors.New("bundletest: tamper not supported by this device")

// Tamper returns a tampered copy of the case's target bundle and the state
// to verify it against. The chain needs at least two bundles.
func (c *Chain) Tamper(ctx context.Context, cs Case) (*bundle.Bundle, *verify.State, error) {
	if len(c.Bundles) < 2 {
		return nil, nil, errors.New("bundletest: chain needs two bundles")
	}
	b := Clone(c.Bundles[cs.Target])
	var prev *verify.State
	if cs.Prev >= 0 {
		prev = c.States[cs.Prev]
	}
	t := &tamperer{c: c, b: b, ctx: ctx}
	if err := t.apply(cs.Kind); err != nil {
		return nil, nil, fmt.Errorf("bundletest: %s: %w", cs.Kind, err)
	}
	return b, prev, nil
}

// Clone deep-copies a bundle.
func Clone(b *bundle.Bundle) *bundle.Bundle {
	out := &bundle.Bundle{Files: make(map[string][]byte, len(b.Files))}
	for k, v := range b.Files {
		out.Files[k] = slices.Clone(v)
	}
	return out
}

type tamperer struct {
	c   *Chain
	b   *bundle.Bundle
	ctx context.Context
}

// statement decodes the target's statement.
func (t *tamperer) statement() (*bundle.Statement, error) {
	_, st, err := t.b.Statement()
	return st, err
}

// reseal signs st with signer (the device when nil), sets the subject to
// the current records file and recomputes the manifests.
func (t *tamperer) reseal(st *bundle.Statement, signer dsse.Signer) error {
	if signer == nil {
		signer = t.c.Dev
	}
	sum := sha256.Sum256(t.b.Files[bundle.PathRecords])
	st.Subject[0].Digest["sha256"] = fmt.Sprintf("%x", sum)
	if err := bundle.SignStatement(t.ctx, t.b, st, signer); err != nil {
		return err
	}
	return t.b.UpdateManifests()
}

// requote takes a fresh quote for the statement's checkpoint from dev.
func (t *tamperer) requote(st *bundle.Statement, dev Device, nonce []byte) error {
	if nonce == nil {
		sum := sha256.Sum256([]byte(st.Predicate.Checkpoint))
		nonce = sum[:]
	}
	q, err := dev.Quote(t.ctx, nonce)
	if err != nil {
		return err
	}
	return t.setQuote(st, q)
}

func (t *tamperer) setQuote(st *bundle.Statement, q bundle.Quote) error {
	a, err := attest.ParseAttest(q.Attest)
	if err != nil {
		return err
	}
	st.Predicate.Quote = bundle.NewSealQuote(q.Attest, q.Signature, q.PCRs, q.Values)
	st.Predicate.Clock = a.Clock
	pcrs, err := attest.MarshalPCRsFile(q.PCRs, q.Values)
	if err != nil {
		return err
	}
	t.b.Files[bundle.PathQuoteMsg] = q.Attest
	t.b.Files[bundle.PathQuoteSig] = q.Signature
	t.b.Files[bundle.PathQuotePCRs] = pcrs
	return nil
}

// records decodes the target's records.
func (t *tamperer) records() ([]*custody.Record, error) {
	raw, err := t.b.Records()
	if err != nil {
		return nil, err
	}
	out := make([]*custody.Record, len(raw))
	for i, r := range raw {
		if out[i], err = custody.ParseRecord(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *tamperer) setRecords(recs []*custody.Record) error {
	var buf []byte
	for _, r := range recs {
		b, err := r.Marshal()
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	t.b.Files[bundle.PathRecords] = buf
	return nil
}

// editRecords changes the records and re-signs the statement.
func (t *tamperer) editRecords(fn func([]*custody.Record) []*custody.Record) error {
	recs, err := t.records()
	if err != nil {
		return err
	}
	if err := t.setRecords(fn(recs)); err != nil {
		return err
	}
	st, err := t.statement()
	if err != nil {
		return err
	}
	return t.reseal(st, nil)
}

// editStatement changes the statement and re-signs it.
func (t *tamperer) editStatement(fn func(*bundle.Statement) error) error {
	st, err := t.statement()
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	return t.reseal(st, nil)
}

// exportIndex returns the index of a middle export record.
func exportIndex(recs []*custody.Record) int {
	for i := len(recs) / 2; i < len(recs); i++ {
		if recs[i].Type == custody.TypeExport {
			return i
		}
	}
	return len(recs) / 2
}

func (t *tamperer) payloadPath() (string, error) {
	for _, n := range t.b.Names() {
		if _, ok := bundle.PayloadDigestFromPath(n); ok {
			return n, nil
		}
	}
	return "", errors.New("no payload in bundle")
}

func changeBody(r *custody.Record) {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	m["purpose"] = "something else"
	_ = r.SetBody(m)
}

func (t *tamperer) apply(kind string) error {
	switch kind {
	case "record.changed.unsigned":
		recs, err := t.records()
		if err != nil {
			return err
		}
		changeBody(recs[exportIndex(recs)])
		if err := t.setRecords(recs); err != nil {
			return err
		}
		return t.b.UpdateManifests()
	case "record.changed":
		return t.editRecords(func(r []*custody.Record) []*custody.Record { changeBody(r[exportIndex(r)]); return r })
	case "record.changed.retree":
		return t.retree(func(r []*custody.Record) []*custody.Record { changeBody(r[exportIndex(r)]); return r })
	case "record.dropped":
		return t.editRecords(func(r []*custody.Record) []*custody.Record { return slices.Delete(r, len(r)/2, len(r)/2+1) })
	case "record.reordered":
		return t.editRecords(func(r []*custody.Record) []*custody.Record {
			i := len(r) / 2
			r[i], r[i+1] = r[i+1], r[i]
			return r
		})
	case "record.inserted":
		return t.editRecords(func(r []*custody.Record) []*custody.Record {
			i := exportIndex(r)
			forged := *r[i]
			changeBody(&forged)
			return slices.Insert(r, i+1, &forged)
		})
	case "record.device":
		return t.editRecords(func(r []*custody.Record) []*custody.Record { r[0].Device = "site1/other"; return r })
	case "record.backdated":
		return t.editRecords(func(r []*custody.Record) []*custody.Record {
			r[len(r)-1].Time = r[len(r)-1].Time.AddDate(-1, 0, 0)
			return r
		})
	case "chain.broken":
		return t.editRecords(func(r []*custody.Record) []*custody.Record {
			r[len(r)-1].Prev = sha256.Sum256([]byte("elsewhere"))
			return r
		})
	case "payload.changed", "bagit.manifest":
		p, err := t.payloadPath()
		if err != nil {
			return err
		}
		t.b.Files[p][0] ^= 0xff
		if kind == "bagit.manifest" {
			return nil
		}
		return t.b.UpdateManifests()
	case "payload.dropped":
		p, err := t.payloadPath()
		if err != nil {
			return err
		}
		delete(t.b.Files, p)
		return t.b.UpdateManifests()
	case "payload.extra":
		extra := []byte("smuggled")
		t.b.Files[bundle.PayloadPath(sha256.Sum256(extra))] = extra
		return t.b.UpdateManifests()
	case "root.wrong":
		return t.editStatement(func(st *bundle.Statement) error {
			cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
			if err != nil {
				return err
			}
			cp.Root = sha256.Sum256([]byte("other root"))
			st.Predicate.Checkpoint = string(cp.Marshal())
			return t.requote(st, t.c.Dev, nil)
		})
	case "origin.other":
		return t.editStatement(func(st *bundle.Statement) error {
			cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
			if err != nil {
				return err
			}
			cp.Origin = merkle.Origin("site9/dev9")
			st.Predicate.Checkpoint = string(cp.Marshal())
			return t.requote(st, t.c.Dev, nil)
		})
	case "signature.forged":
		env, err := dsse.ParseEnvelope(t.b.Files[bundle.PathSeal])
		if err != nil {
			return err
		}
		env.Signatures[0].Sig[len(env.Signatures[0].Sig)/2] ^= 1
		if t.b.Files[bundle.PathSeal], err = env.Marshal(); err != nil {
			return err
		}
		return t.b.UpdateManifests()
	case "signature.otherkey":
		st, err := t.statement()
		if err != nil {
			return err
		}
		st.Predicate.Counter += 1000
		return t.reseal(st, keyIDSigner{t.c.Attacker, t.c.Dev.KeyID()})
	case "key.swapped", "key.uncertified":
		a := t.c.Attacker.Identity()
		t.b.Files[bundle.PathSigningPub] = a.SigningPublic
		if kind == "key.swapped" {
			t.b.Files[bundle.PathAKPub] = a.AKPublic
			t.b.Files[bundle.PathCertifyMsg] = a.Certify.Attest
			t.b.Files[bundle.PathCertifySig] = a.Certify.Signature
		}
		st, err := t.statement()
		if err != nil {
			return err
		}
		st.Predicate.KeyID = t.c.Attacker.KeyID()
		if kind == "key.swapped" {
			if err := t.requote(st, t.c.Attacker, nil); err != nil {
				return err
			}
		}
		return t.reseal(st, t.c.Attacker)
	case "quote.otherpcrs":
		soft, ok := t.c.Dev.(Soft)
		if !ok {
			return ErrUnsupported
		}
		// Quoted in the moved state; signed after a reboot into the good one.
		saved := maps.Clone(soft.Values)
		soft.SignWhenMoved = true
		defer func() { soft.Values, soft.SignWhenMoved = saved, false }()
		other := maps.Clone(saved)
		soft.Values = other
		soft.Extend(soft.PCRs[len(soft.PCRs)-1], []byte("other kernel"))
		return t.editStatement(func(st *bundle.Statement) error { return t.requote(st, soft, nil) })
	case "quote.wrongnonce":
		return t.editStatement(func(st *bundle.Statement) error {
			n := sha256.Sum256([]byte("some other checkpoint"))
			return t.requote(st, t.c.Dev, n[:])
		})
	case "quote.replayed":
		_, old, err := t.c.Bundles[0].Statement()
		if err != nil {
			return err
		}
		return t.editStatement(func(st *bundle.Statement) error {
			q := old.Predicate.Quote
			pcrs, values, err := q.Values()
			if err != nil {
				return err
			}
			return t.setQuote(st, bundle.Quote{Attest: q.Attest, Signature: q.Signature, PCRs: pcrs, Values: values})
		})
	case "quote.resetcount":
		soft, ok := t.c.Dev.(Soft)
		if !ok {
			return ErrUnsupported
		}
		soft.ResetCount--
		defer func() { soft.ResetCount++ }()
		return t.editStatement(func(st *bundle.Statement) error { return t.requote(st, soft, nil) })
	case "quote.files":
		pcrs, values := t.c.Trust.PCRs()
		v := slices.Clone(values[pcrs[0]])
		v[0] ^= 0xff // differs from the sealed value, whatever it was
		values[pcrs[0]] = v
		f, err := attest.MarshalPCRsFile(pcrs, values)
		if err != nil {
			return err
		}
		t.b.Files[bundle.PathQuotePCRs] = f
		return t.b.UpdateManifests()
	case "counter.lower":
		return t.editStatement(func(st *bundle.Statement) error {
			st.Predicate.Counter = t.c.States[0].Counter
			return nil
		})
	case "previous.forked":
		return t.editStatement(func(st *bundle.Statement) error {
			cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.PreviousCheckpoint))
			if err != nil {
				return err
			}
			cp.Root = sha256.Sum256([]byte("fork"))
			st.Predicate.PreviousCheckpoint = string(cp.Marshal())
			return nil
		})
	case "previous.leaf":
		return t.editStatement(func(st *bundle.Statement) error {
			st.Predicate.PreviousLeaf = wire.FormatHash(sha256.Sum256([]byte("other leaf")))
			return nil
		})
	case "bundle.replayed":
		return nil
	case "bagit.tagmanifest":
		t.b.Files[bundle.PathAKPEM] = append(t.b.Files[bundle.PathAKPEM], '\n')
		return nil
	case "bagit.oxum":
		t.b.Files[bundle.PathBagInfo] = []byte(replaceOxum(string(t.b.Files[bundle.PathBagInfo])))
		return nil
	}
	return fmt.Errorf("unknown tamper kind %q", kind)
}

// retree rewrites the records, recomputes the checkpoint root from the
// range hashes, takes a quote for it and re-signs, keeping the old
// consistency proof.
func (t *tamperer) retree(fn func([]*custody.Record) []*custody.Record) error {
	recs, err := t.records()
	if err != nil {
		return err
	}
	if err := t.setRecords(fn(recs)); err != nil {
		return err
	}
	raw, err := t.b.Records()
	if err != nil {
		return err
	}
	leaves := make([][32]byte, len(raw))
	for i, r := range raw {
		leaves[i] = merkle.LeafHash(r)
	}
	return t.editStatement(func(st *bundle.Statement) error {
		cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
		if err != nil {
			return err
		}
		rng := make([][32]byte, len(st.Predicate.RangeHashes))
		for i, h := range st.Predicate.RangeHashes {
			copy(rng[i][:], h)
		}
		if cp.Root, _, err = merkle.FoldRange(rng, st.Predicate.FirstSeq, leaves); err != nil {
			return err
		}
		st.Predicate.Checkpoint = string(cp.Marshal())
		return t.requote(st, t.c.Dev, nil)
	})
}

func replaceOxum(info string) string {
	out := []byte(info)
	for i := len(out) - 2; i > 0; i-- {
		if out[i] >= '0' && out[i] <= '8' {
			out[i]++
			return string(out)
		}
	}
	return info + "x"
}

// keyIDSigner signs with one device but claims another's key id.
type keyIDSigner struct {
	Device
	id string
}

func (k keyIDSigner) KeyID() string { return k.id }
