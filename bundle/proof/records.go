package proof

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Checks of the records, their inclusion and the payload.

// recordsParse: every record is canonical, of the proof's device, the
// first is the export record of the proof's id and principal, and the
// others are related to it.
func (c *checker) recordsParse() error {
	var errs []string
	var parsed []*custody.Record
	for _, r := range c.p.Records {
		rec, err := custody.ParseRecord([]byte(r.Record))
		if err != nil {
			errs = append(errs, fmt.Sprintf("record %d: %v", r.Seq, err))
			continue
		}
		if rec.Seq != r.Seq {
			errs = append(errs, fmt.Sprintf("record at seq %d says seq %d", r.Seq, rec.Seq))
		}
		if rec.Device != c.p.Device {
			errs = append(errs, fmt.Sprintf("record %d is of device %.80s", r.Seq, rec.Device))
		}
		parsed = append(parsed, rec)
	}
	if len(errs) > 0 {
		return joinErrs(errs)
	}
	if c.export == nil {
		return fmt.Errorf("the first record is not the export record of %q by %q", c.p.ExportID, c.p.Principal)
	}
	for _, r := range parsed[1:] {
		if err := c.relatedRecord(r); err != nil {
			errs = append(errs, fmt.Sprintf("record %d (%s): %v", r.Seq, r.Type, err))
		}
	}
	return joinErrs(errs)
}

// relatedRecord says why r is not a record of the export, nil when it is.
func (c *checker) relatedRecord(r *custody.Record) error {
	switch r.Type {
	case custody.TypeExportRejected:
		var body custody.RejectedBody
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return err
		}
		if body.ExportID != c.p.ExportID || r.Actor.ID != c.p.Principal {
			return errors.New("a refusal of another export")
		}
	case custody.TypeRetentionPurge:
		var body custody.PurgeBody
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return err
		}
		if !slices.Contains(body.Payloads, c.export.Payload.Digest) {
			return errors.New("does not purge the export's payload")
		}
	case custody.TypePolicyChange:
		d, _, err := verify.PolicyChange(r.Body)
		if err == nil && d != c.export.Policy {
			err = fmt.Errorf("policy %s, the export names %s", d, c.export.Policy)
		}
		return err
	default:
		return errors.New("not a record of an export")
	}
	return nil
}

func (c *checker) recordsInclusion() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	var errs []string
	for _, r := range c.p.Records {
		leaf := merkle.LeafHash([]byte(r.Record))
		if r.Seq >= c.cp.Size {
			errs = append(errs, fmt.Sprintf("record %d beyond the checkpoint's %d", r.Seq, c.cp.Size))
			continue
		}
		if err := merkle.VerifyInclusion(merkle.ProofHashes(r.Inclusion), r.Seq, c.cp.Size, c.cp.Root, leaf); err != nil {
			errs = append(errs, fmt.Sprintf("record %d is not leaf %d of the sealed checkpoint", r.Seq, r.Seq))
		}
	}
	return joinErrs(errs)
}

func (c *checker) payloadDigest() error {
	if c.export == nil {
		return skip("no export record")
	}
	want, err := wire.ParseHash(c.export.Payload.Digest)
	if err != nil {
		return err
	}
	if c.p.Payload == nil {
		for _, r := range c.recs[1:] {
			if r.Type == custody.TypeRetentionPurge {
				c.notes[CheckPayloadDigest] = fmt.Sprintf("payload purged by record %d", r.Seq)
				return nil
			}
		}
		return errors.New("payload missing and no purge record of it")
	}
	if pc := c.export.PayloadCipher; pc != nil {
		// Encrypted: the payload is the ciphertext the record names (its
		// digest, a known suite, the suite's form); the plaintext's
		// digest is the record's, checked by whoever decrypts it.
		if err := payloadcipher.CheckFile(pc, c.p.Payload); err != nil {
			return err
		}
		c.notes[CheckPayloadDigest] = "payload encrypted (" + pc.Suite().String() + "): the ciphertext is the record's"
		return nil
	}
	if sum := sha256.Sum256(c.p.Payload); sum != want {
		return fmt.Errorf("payload hashes to %s, the export record says %s", wire.FormatHash(sum), c.export.Payload.Digest)
	}
	if int64(len(c.p.Payload)) != c.export.Payload.Size {
		return fmt.Errorf("payload of %d bytes, the export record says %d", len(c.p.Payload), c.export.Payload.Size)
	}
	return nil
}

func (c *checker) policySigned() error {
	if c.export == nil {
		return skip("no export record")
	}
	for _, r := range c.recs[1:] {
		if r.Type != custody.TypePolicyChange {
			continue
		}
		d, admins, err := verify.PolicyChange(r.Body)
		if err != nil {
			return fmt.Errorf("record %d: %w", r.Seq, err)
		}
		if c.trust != nil && c.trust.PolicyAdmins != "" && admins != c.trust.PolicyAdmins {
			return fmt.Errorf("record %d: admin set %s, the trust file pins %s", r.Seq, admins, c.trust.PolicyAdmins)
		}
		if d != c.export.Policy {
			return fmt.Errorf("record %d puts %s in force, the export names %s", r.Seq, d, c.export.Policy)
		}
		c.notes[CheckPolicySigned] = fmt.Sprintf("policy %s signed (record %d)", d, r.Seq)
		return nil
	}
	c.notes[CheckPolicySigned] = "the policy.change the export names is not in its bundle (see the evidence pack's policies)"
	return nil
}
