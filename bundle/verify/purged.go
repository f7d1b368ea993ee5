package verify

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// VerifyPurged verifies the skeleton of a bundle whose payload bytes the
// archive purged: b is the bundle as stored after the purge (the files
// under data/payloads/ removed, every other file as sealed) and purged
// the payload digests the archive's signed retention.purge statement
// names. It runs every check of Verify, except that the payload files of
// purged are expected absent: their manifest lines stay (and count),
// Payload-Oxum counts them (their bytes are not checked), and an export
// record whose payload is among them passes payloads.digest with the
// note "purged at the archive". A purged payload still present, or one
// the manifest does not list, fails. The seal, records, checkpoints,
// quote and keys are checked as for any bundle: a purge removes bytes
// the device's signature binds only through the records' digests.
func VerifyPurged(b *bundle.Bundle, t *trustfile.Trust, prev *State, purged [][32]byte) *Report {
	v := &verifier{b: b, t: t, prev: prev, rep: &Report{}, gone: make(map[[32]byte]bool, len(purged))}
	for _, d := range purged {
		v.gone[d] = true
	}
	rep := v.verify()
	if len(purged) > 0 {
		for i := range rep.Checks {
			if c := &rep.Checks[i]; c.Name == CheckPayloadsDigest && c.OK {
				note := strconv.Itoa(len(purged)) + " payload(s) purged at the archive"
				c.Detail = strings.TrimPrefix(c.Detail+"; "+note, "; ")
			}
		}
	}
	return rep
}

// goneLines counts the lines of the manifest at path that name a payload
// purged at the archive and absent (0 for the tag manifest and outside
// VerifyPurged); bad lists those whose digest is not the one their path
// names (a plain payload file holds the bytes its name digests).
func (v *verifier) goneLines(path string, set uint8) (n int, bad []string) {
	if len(v.gone) == 0 || set != inManifest {
		return 0, nil
	}
	_, _ = bundle.ScanManifest(v.b.Files[path], func(name []byte, sum *[32]byte) {
		if d, ok := gonePayload(name); ok && v.gone[d] {
			if _, present := v.lookup(name); !present {
				n++
				if !bytes.HasSuffix(name, []byte(bundle.EncryptedPayload)) && *sum != d {
					bad = append(bad, string(name)+" (purged) listed with another digest")
				}
			}
		}
	})
	return n, bad
}

// gonePayload decodes the digest a payload path names.
func gonePayload(name []byte) ([32]byte, bool) {
	var d [32]byte
	rest, ok := bytes.CutPrefix(name, []byte(bundle.PayloadDir))
	if !ok {
		return d, false
	}
	rest = bytes.TrimSuffix(rest, []byte(bundle.EncryptedPayload))
	return d, strict.DecodeHex(d[:], rest)
}

// purgedOxum accepts a Payload-Oxum that counts the purged payload files
// beside the present ones: the file count exactly; the octets exactly
// when every purged file is a plain payload of an export record (its
// size), else at least those present.
func (v *verifier) purgedOxum(got string) bool {
	gone, _ := v.goneLines(bundle.PathManifest, inManifest)
	if gone == 0 {
		return false
	}
	octets, files, ok := strings.Cut(got, ".")
	o, err1 := strconv.Atoi(octets)
	n, err2 := strconv.Atoi(files)
	if !ok || err1 != nil || err2 != nil || n != v.nData+gone {
		return false
	}
	want, exact := int64(v.octets), true
	refs, _, err := v.payloadRefs()
	if err != nil || v.recsErr != nil {
		exact = false
	}
	_, _ = bundle.ScanManifest(v.b.Files[bundle.PathManifest], func(name []byte, _ *[32]byte) {
		d, ok := gonePayload(name)
		if !ok || !v.gone[d] {
			return
		}
		if _, present := v.lookup(name); present {
			return
		}
		r, known := refs[d]
		if !known || (r.cipher != nil) != bytes.HasSuffix(name, []byte(bundle.EncryptedPayload)) || r.fileSize() < 0 {
			exact = false
		} else {
			want += r.fileSize()
		}
	})
	if exact {
		return int64(o) == want
	}
	return o >= v.octets
}
