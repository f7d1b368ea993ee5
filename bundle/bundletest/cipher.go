package bundletest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// CipherCases attack encrypted payloads (a chain built with
// Options.ContentKey). The attacker holds the device: records are
// re-chained, the root re-quoted and the seal re-signed, on the first
// bundle verified alone, so only the payload checks can catch them.
var CipherCases = []Case{
	{"cipher.suite", verify.CheckPayloadCipher, 0, -1, "an export's AEAD id swapped for an unknown one, re-signed"},
	{"cipher.version", verify.CheckPayloadCipher, 0, -1, "an export's payload cipher version swapped for an unknown one (3), re-signed"},
	{"cipher.moved", verify.CheckPayloadCipher, 0, -1, "an export names another record's ciphertext, its own dropped, re-signed"},
	{"cipher.truncated", verify.CheckPayloadsDigest, 0, -1, "a ciphertext cut by a byte, the record's digest updated, re-signed"},
	{"cipher.plaintext", verify.CheckPayloadsReferenced, 0, -1, "a plaintext copy of an encrypted payload added, manifests recomputed"},
}

// SwappedCipher is a tamper kind TamperCipher makes that no offline
// verifier can see: two exports of the same size trade their
// ciphertexts (records re-signed). Each ciphertext is then bound (HPKE
// info) to the other record, so only a holder of the content key finds
// it: the archive's trial decryption.
const SwappedCipher = "cipher.swapped"

// RelabeledCipher is a tamper kind TamperCipher makes that no offline
// verifier can see either: an export's payload cipher version swapped
// for the other known one (2 named 1, or 1 named 2; records re-signed).
// Both versions have the same layout and the version is bound, so only
// the archive's trial decryption finds it.
const RelabeledCipher = "cipher.relabeled"

// TamperCipher is Tamper for CipherCases and SwappedCipher.
func (c *Chain) TamperCipher(ctx context.Context, cs Case) (*bundle.Bundle, *verify.State, error) {
	if c.Opts.ContentKey == nil {
		return nil, nil, errors.New("bundletest: the chain's payloads are not encrypted")
	}
	b := Clone(c.Bundles[cs.Target])
	var prev *verify.State
	if cs.Prev >= 0 {
		prev = c.States[cs.Prev]
	}
	t := &tamperer{c: c, b: b, ctx: ctx}
	if err := t.applyCipher(cs.Kind); err != nil {
		return nil, nil, fmt.Errorf("bundletest: %s: %w", cs.Kind, err)
	}
	return b, prev, nil
}

// encryptedExports returns the indexes of the export records whose
// ciphertext the bundle carries.
func (t *tamperer) encryptedExports(recs []*custody.Record) []int {
	var out []int
	for i, r := range recs {
		if r.Type != custody.TypeExport {
			continue
		}
		e, err := r.ExportBody()
		if err != nil || e.PayloadCipher == nil {
			continue
		}
		d, _ := wire.ParseHash(e.PayloadCipher.Digest)
		if _, ok := t.b.Files[bundle.PayloadPath(d)+bundle.EncryptedPayload]; ok {
			out = append(out, i)
		}
	}
	return out
}

func setExport(r *custody.Record, fn func(*custody.ExportBody)) error {
	e, err := r.ExportBody()
	if err != nil {
		return err
	}
	fn(e)
	return r.SetBody(e)
}

// rechain sets each record's prev to the leaf hash of the one before.
func rechain(recs []*custody.Record) []*custody.Record {
	for i := 1; i < len(recs); i++ {
		b, err := recs[i-1].Marshal()
		if err == nil {
			recs[i].Prev = merkle.LeafHash(b)
		}
	}
	return recs
}

func (t *tamperer) applyCipher(kind string) error {
	recs, err := t.records()
	if err != nil {
		return err
	}
	enc := t.encryptedExports(recs)
	if len(enc) < 2 {
		return errors.New("fewer than two encrypted payloads in the bundle")
	}
	first, second := recs[enc[0]], recs[enc[1]]
	fe, _ := first.ExportBody()
	switch kind {
	case "cipher.suite":
		if err := setExport(first, func(e *custody.ExportBody) { e.PayloadCipher.AEAD = 3 }); err != nil {
			return err
		}
	case "cipher.version":
		if err := setExport(first, func(e *custody.ExportBody) { e.PayloadCipher.V = 3 }); err != nil {
			return err
		}
	case RelabeledCipher:
		if err := setExport(first, func(e *custody.ExportBody) {
			if e.PayloadCipher.V == 0 {
				e.PayloadCipher.V = 2
			} else {
				e.PayloadCipher.V = 0
			}
		}); err != nil {
			return err
		}
	case "cipher.moved":
		se, _ := second.ExportBody()
		d, _ := wire.ParseHash(se.PayloadCipher.Digest)
		delete(t.b.Files, bundle.PayloadPath(d)+bundle.EncryptedPayload)
		if err := setExport(second, func(e *custody.ExportBody) { e.PayloadCipher.Digest = fe.PayloadCipher.Digest }); err != nil {
			return err
		}
	case "cipher.truncated":
		d, _ := wire.ParseHash(fe.PayloadCipher.Digest)
		p := bundle.PayloadPath(d) + bundle.EncryptedPayload
		ct := slices.Clone(t.b.Files[p])
		ct = ct[:len(ct)-1]
		delete(t.b.Files, p)
		nd := sha256.Sum256(ct)
		t.b.Files[bundle.PayloadPath(nd)+bundle.EncryptedPayload] = ct
		if err := setExport(first, func(e *custody.ExportBody) { e.PayloadCipher.Digest = wire.FormatHash(nd) }); err != nil {
			return err
		}
	case SwappedCipher:
		se, _ := second.ExportBody()
		a, b := fe.PayloadCipher.Digest, se.PayloadCipher.Digest
		if err := setExport(first, func(e *custody.ExportBody) { e.PayloadCipher.Digest = b }); err != nil {
			return err
		}
		if err := setExport(second, func(e *custody.ExportBody) { e.PayloadCipher.Digest = a }); err != nil {
			return err
		}
	case "cipher.plaintext":
		d, _ := wire.ParseHash(fe.PayloadCipher.Digest)
		t.b.Files[bundle.PayloadPath(d)] = []byte("a plaintext copy")
		return t.b.UpdateManifests()
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	if err := t.b.UpdateManifests(); err != nil {
		return err
	}
	return t.retree(func([]*custody.Record) []*custody.Record { return rechain(recs) })
}
