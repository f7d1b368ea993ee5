package archivesig_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// An archive rotates its key: the announcement is signed by the old key
// and the new one. A verifier configured with the old key learns the new
// one from it, and accepts the old key for receipts logged after the
// switch only during the overlap.
func ExampleArchiveKeys() {
	seed := func(s string) ed25519.PrivateKey { h := sha256.Sum256([]byte(s)); return ed25519.NewKeyFromSeed(h[:]) }
	oldKey, newKey := seed("old archive key"), seed("new archive key")
	oldID := archivesig.ArchiveKeyID(oldKey.Public().(ed25519.PublicKey))

	switched := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	raw, err := archivesig.SignArchiveKey(&archivesig.ArchiveKeyAnnouncement{
		Origin: "edgeseal-archive", Seq: 1, LogSize: 1000,
		Time: wire.FormatTime(switched), OverlapUntil: wire.FormatTime(switched.Add(7 * 24 * time.Hour)),
	}, oldID, oldKey, newKey)
	if err != nil {
		panic(err)
	}

	keys := archivesig.NewArchiveKeys("edgeseal-archive", oldKey.Public().(ed25519.PublicKey))
	learned, err := keys.Learn(raw)
	fmt.Println("learned:", learned, err)
	cur, _ := keys.Current()
	fmt.Println("current is the new key:", cur == archivesig.ArchiveKeyID(newKey.Public().(ed25519.PublicKey)))

	_, err = keys.Key(oldID, 999, switched.Add(30*24*time.Hour))
	fmt.Println("old key, entry logged before the switch:", err == nil)
	_, err = keys.Key(oldID, 1000, switched.Add(24*time.Hour))
	fmt.Println("old key, new entry, during the overlap:", err == nil)
	_, err = keys.Key(oldID, 1000, switched.Add(30*24*time.Hour))
	fmt.Println("old key, new entry, after the overlap:", err == nil)
	// Output:
	// learned: true <nil>
	// current is the new key: true
	// old key, entry logged before the switch: true
	// old key, new entry, during the overlap: true
	// old key, new entry, after the overlap: false
}
