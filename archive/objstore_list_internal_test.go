package archive

import (
	"encoding/hex"
	"testing"
)

// FuzzDigestName: an object name is read as a digest only when it is
// the 64 lowercase hex digits of that digest.
func FuzzDigestName(f *testing.F) {
	f.Add("ab" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddee")
	f.Add(".tmp-1")
	f.Add("AB00112233445566778899aabbccddeeff00112233445566778899aabbccddee")
	f.Fuzz(func(t *testing.T, name string) {
		d, ok := digestName(name)
		if ok && hex.EncodeToString(d[:]) != name {
			t.Fatalf("%q read as sha256:%x", name, d)
		}
	})
}
