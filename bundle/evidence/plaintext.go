package evidence

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// PlaintextFile is the name of an encrypted export's decrypted payload in
// its folder, when the archive decrypted it for the pack (a custody
// event of the archive's access log).
const PlaintextFile = "plaintext"

// checkPlaintext: pt is the plaintext the export's record names: the
// record is of an encrypted payload, and pt has its payload digest and
// size.
func (pe packedExport) checkPlaintext(pt []byte) error {
	e := pe.export
	if e == nil || e.PayloadCipher == nil {
		return errors.New("a plaintext for an export that is not encrypted")
	}
	if got := wire.FormatHash(sha256.Sum256(pt)); got != e.Payload.Digest || int64(len(pt)) != e.Payload.Size {
		return fmt.Errorf("the plaintext (%s, %d bytes) is not the record's (%s, %d bytes)", got, len(pt), e.Payload.Digest, e.Payload.Size)
	}
	return nil
}

// plaintexts: each plaintext the index names is its export's folder's
// "plaintext" file, present, of an encrypted export, and the plaintext
// its record names (digest and size).
func (c *packChecker) plaintexts() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	var errs []string
	n := 0
	for _, e := range c.exps {
		if e.plaintext == "" {
			continue
		}
		n++
		if e.plaintext != e.dir+"/"+PlaintextFile {
			errs = append(errs, fmt.Sprintf("%s: plaintext %.80q is not %s/%s", e.dir, e.plaintext, e.dir, PlaintextFile))
			continue
		}
		pt, ok := c.p.Files[e.plaintext]
		if !ok {
			errs = append(errs, e.plaintext+" missing")
			continue
		}
		if err := e.checkPlaintext(pt); err != nil {
			errs = append(errs, e.dir+": "+err.Error())
		}
	}
	if len(errs) == 0 {
		if n == 0 {
			c.notes[CheckPlaintext] = "no plaintext in the pack"
		} else {
			c.notes[CheckPlaintext] = fmt.Sprintf("%d decrypted payload(s), each the plaintext its record names", n)
		}
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}
