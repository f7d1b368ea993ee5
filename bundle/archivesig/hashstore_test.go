package archivesig_test

import "golang.org/x/mod/sumdb/tlog"

// hashStore is an x/mod/sumdb/tlog stored-hash log, the reference log the
// receipts' inclusion proofs are checked against.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s[x]
	}
	return out, nil
}
