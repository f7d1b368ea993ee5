package archivesig

import (
	"bytes"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// KeyChainVersion is the version of a key chain file.
const KeyChainVersion = 1

// MaxKeyChainFileSize bounds a key chain file (MaxKeyChainFileLen
// announcements in base64).
const MaxKeyChainFileSize = 6 * MaxKeyChainFileLen * MaxArchiveKeySize / 4

// MaxKeyChainFileLen bounds the announcements of a key chain file (an
// archive rotates its key at most this many times).
const MaxKeyChainFileLen = 4 * MaxKeyChain

// KeyChainFile is the file an archive (<data_dir>/archive-keys.json) and
// an agent (<data_dir>/archive-keys.json) keep the archive's key
// announcements in, oldest first.
type KeyChainFile struct {
	V             int      `json:"v"` // KeyChainVersion
	Origin        string   `json:"origin"`
	Announcements [][]byte `json:"announcements"` // envelopes (base64 in JSON)
}

// Marshal returns the canonical JSON of the file.
func (f *KeyChainFile) Marshal() ([]byte, error) {
	c := *f
	c.V = KeyChainVersion
	if c.Announcements == nil {
		c.Announcements = [][]byte{}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return marshalCanonical(&c)
}

func (f *KeyChainFile) check() error {
	if f.V != KeyChainVersion {
		return wire.FormatErr("key chain", "version %d", f.V)
	}
	if !wire.ValidName(f.Origin) {
		return wire.FormatErr("key chain", "origin %.60q", f.Origin)
	}
	if len(f.Announcements) > MaxKeyChainFileLen {
		return wire.FormatErr("key chain", "%d announcements", len(f.Announcements))
	}
	for i, a := range f.Announcements {
		if _, _, err := ParseArchiveKey(a); err != nil {
			return fmt.Errorf("bundle: key chain announcement %d: %w", i, err)
		}
	}
	return nil
}

// ParseKeyChainFile reads a key chain file strictly: size, canonical
// JSON, known fields, version, and every announcement well formed (their
// links are checked by the reader: ArchiveKeys.LearnChain).
func ParseKeyChainFile(b []byte) (*KeyChainFile, error) {
	if len(b) > MaxKeyChainFileSize {
		return nil, fmt.Errorf("%w: key chain of %d bytes", wire.ErrTooLarge, len(b))
	}
	var f KeyChainFile
	if err := strict.Unmarshal(b, &f); err != nil {
		return nil, wire.WrapFormat("key chain", "json", err)
	}
	if f.Announcements == nil {
		return nil, wire.FormatErr("key chain", "no announcements member")
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if canon, err := marshalCanonical(&f); err != nil || !bytes.Equal(canon, b) {
		return nil, &wire.NotCanonicalError{Format: "key chain", Offset: strict.FirstDiff(canon, b)}
	}
	return &f, nil
}
