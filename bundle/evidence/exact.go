package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
)

// A pack's files that its checks parse rather than rebuild (the index,
// the archive key files, the policies) must be exactly the bytes the
// format writes for what they parse to: nothing, white space included,
// can be added to a pack that still verifies.

// exactIndex names raw (data/pack.json) unless it is idx written as the
// format says.
func exactIndex(idx *Index, raw []byte) []string {
	want, err := json.MarshalIndent(idx, "", "  ")
	if err != nil || !bytes.Equal(append(want, '\n'), raw) {
		return []string{PathIndex + ": not written as the format says (two-space indented, members in order, one final newline, no other white space)"}
	}
	return nil
}

// exactKeys names the archive key files (the pack's key and the earlier
// keys) that hold an Ed25519 key but not as its PEM block alone; the
// other checks say what else is wrong with them.
func exactKeys(p *Pack, idx *Index) []string {
	files := []string{idx.Archive.Key}
	for _, k := range idx.Archive.EarlierKeys {
		files = append(files, k.File)
	}
	var errs []string
	for _, f := range files {
		b := p.Files[f]
		blk, _ := pem.Decode(b)
		if blk == nil {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if ek, ok := k.(ed25519.PublicKey); err == nil && ok && !bytes.Equal(b, pemKey(ek)) {
			errs = append(errs, f+": not the key's PEM block alone, as the format writes it")
		}
	}
	return errs
}

// canonical reports whether b is canonical JSON (RFC 8785), as a record's
// body is.
func canonical(b []byte) bool {
	c, err := canonjson.Append(nil, b)
	return err == nil && bytes.Equal(c, b)
}
