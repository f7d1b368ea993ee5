package archive

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Retired keys. A receipt keeps the signature of the key that signed it
// when the archive rotates away from that key, and an announcement names
// the retired key only by its id: to build the proof of an export whose
// receipt an earlier key signed, the archive keeps the public keys it
// retired in <data_dir>/archive-keys-retired.json, canonical JSON
// {"keys":["<base64 of the 32-byte Ed25519 key>",…],"v":1}, oldest first,
// written by RotateKey before it logs the announcement. A key in it that
// no announcement of the chain retires is ignored (a rotation that
// stopped before its log entry). An archive rotated by a build without
// the file cannot prove its earlier receipts until the old public key is
// added to it.

// RetiredKeysFile is the retired keys file in the archive's data directory.
const RetiredKeysFile = "archive-keys-retired.json"

// maxRetiredKeysFile bounds the file.
const maxRetiredKeysFile = 64 << 10

type retiredKeysFile struct {
	Keys [][]byte `json:"keys"`
	V    int      `json:"v"`
}

// readRetiredKeys reads the file (absent: none), in order.
func readRetiredKeys(dir string) ([]ed25519.PublicKey, error) {
	f, err := os.Open(filepath.Join(dir, RetiredKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRetiredKeysFile+1))
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", RetiredKeysFile, err)
	}
	var rf retiredKeysFile
	if len(b) > maxRetiredKeysFile || json.Unmarshal(b, &rf) != nil || rf.V != 1 || len(rf.Keys) > archivesig.MaxKeyChainFileLen {
		return nil, fmt.Errorf("archive: %s: malformed", RetiredKeysFile)
	}
	out := make([]ed25519.PublicKey, 0, len(rf.Keys))
	for _, k := range rf.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("archive: %s: a key of %d bytes", RetiredKeysFile, len(k))
		}
		out = append(out, ed25519.PublicKey(k))
	}
	return out, nil
}

// retiredKeys are the keys of the file that an announcement of chain
// retires, by id.
func retiredKeys(dir string, chain [][]byte) (map[string]ed25519.PublicKey, error) {
	keys, err := readRetiredKeys(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]ed25519.PublicKey{}
	for _, raw := range chain {
		_, an, err := archivesig.ParseArchiveKey(raw)
		if err != nil {
			continue // checked by loadKeyChain
		}
		for _, k := range keys {
			if KeyID(k) == an.OldKeyID {
				out[an.OldKeyID] = k
			}
		}
	}
	return out, nil
}

// keepRetiredKey adds pub to the file (once) durably.
func keepRetiredKey(dir string, pub ed25519.PublicKey) error {
	keys, err := readRetiredKeys(dir)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return k.Equal(pub) }) {
		return nil
	}
	rf := retiredKeysFile{V: 1}
	for _, k := range append(keys, pub) {
		rf.Keys = append(rf.Keys, k)
	}
	b, err := json.Marshal(rf)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, RetiredKeysFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("archive: %s: %w", RetiredKeysFile, err)
	}
	return nil
}

// signingKeyOf returns the archive key that signed a stored receipt and,
// when it is not the current key, the announcements from the one that
// retired it to the current key (proof.Input.ArchiveKeyChain). A receipt
// by a retired key the archive does not keep (RetiredKeysFile) yields the
// current key: building its proof then fails, naming the receipt's key.
func (a *Archive) signingKeyOf(rc []byte) (ed25519.PublicKey, [][]byte) {
	st := a.cur.Load()
	cur := st.key.Public().(ed25519.PublicKey)
	env, _, err := archivesig.ParseReceipt(rc)
	if err != nil || len(env.Signatures) != 1 || env.Signatures[0].KeyID == st.keyID {
		return cur, nil
	}
	id := env.Signatures[0].KeyID
	var key ed25519.PublicKey
	from := -1
	for i, raw := range st.chain {
		_, an, err := archivesig.ParseArchiveKey(raw)
		if err != nil {
			continue
		}
		if an.NewKeyID == id && len(an.NewKey) == ed25519.PublicKeySize {
			key = ed25519.PublicKey(an.NewKey)
		}
		if an.OldKeyID == id && from < 0 {
			from = i
		}
	}
	if key == nil {
		key = st.retired[id]
	}
	if key == nil || from < 0 {
		return cur, nil
	}
	return key, slices.Clone(st.chain[from:])
}
