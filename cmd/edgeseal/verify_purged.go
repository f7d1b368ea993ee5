package main

import (
	"fmt"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// purgeFiles is `verify --purged STATEMENT.json` (repeatable): the
// archive's signed retention.purge statements, by skeleton digest.
type purgeFiles map[[32]byte]purgeEntry

// purgeEntry is a purged object and who signed its statement.
type purgeEntry struct {
	archive.PurgedObject
	by, key string
}

func (p purgeFiles) String() string { return "" }

// Set reads one statement file (the archive log record that `archive
// purge --statement-out` writes). Its signature is checked; whether its
// key is the archive's operator's is the auditor's check (it is printed).
func (p purgeFiles) Set(path string) error {
	raw, err := fsutil.ReadRegular(path, archive.MaxOperatorStatementSize)
	if err != nil {
		return err
	}
	s, err := archive.ParseOperatorStatement(raw)
	if err != nil {
		return err
	}
	if s.Type != archive.StatementPurge {
		return fmt.Errorf("%s is a %s statement, not %s", path, s.Type, archive.StatementPurge)
	}
	for _, o := range s.Purged {
		d, _ := wire.ParseHash(o.Skeleton)
		p[d] = purgeEntry{o, s.By, s.Key}
	}
	return nil
}

// verifyBundle verifies b, as the skeleton of a purged bundle when a
// purge statement names its digest.
func verifyBundle(b *bundle.Bundle, trust *trustfile.Trust, prev *verify.State, purges purgeFiles) *verify.Report {
	if len(purges) == 0 {
		return verify.Verify(b, trust, prev)
	}
	d, err := b.Digest()
	o, ok := purges[d]
	if err != nil || !ok {
		return verify.Verify(b, trust, prev)
	}
	var gone [][32]byte
	for _, h := range o.Payloads {
		pd, _ := wire.ParseHash(h)
		gone = append(gone, pd)
	}
	rep := verify.VerifyPurged(b, trust, prev, gone)
	for i := range rep.Checks {
		if c := &rep.Checks[i]; c.Name == verify.CheckPayloadsDigest && c.OK {
			c.Detail += fmt.Sprintf(" (skeleton of %s, class %s, retained until %s; purge signed by %s, operator key %s)", o.Bundle, o.Class, o.RetainUntil, o.by, o.key)
		}
	}
	return rep
}
