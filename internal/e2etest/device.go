package e2etest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// OpenDevice opens a device's TPM and journal under dir as the agent
// does: the TPM simulator that sim opens (simulator.Open; the caller
// passes it, so this package builds without cgo), created on first use
// with its state in dir/tpm, then the journal, by default in dir/journal,
// encrypted with the TPM's data key (opts sets the rest). Both close at
// t's cleanup.
func OpenDevice(ctx context.Context, t testing.TB, sim func(dir string) (tpm.Transport, error), dir string, opts store.Options) (*tpm.TPM, *store.Journal) {
	t.Helper()
	tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: sim, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	if opts.EncryptionKey, err = tp.DataKey(ctx); err != nil {
		t.Fatal(err)
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(dir, "journal")
	}
	j, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return tp, j
}

// RejectedRecord reads the export.rejected record at seq of the journal:
// its bytes, the record and its body.
func RejectedRecord(t testing.TB, j *store.Journal, seq uint64) ([]byte, *custody.Record, custody.RejectedBody) {
	t.Helper()
	raw, err := j.Record(seq)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := custody.ParseRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	var body custody.RejectedBody
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	return raw, rec, body
}
