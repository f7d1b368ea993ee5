package tlog_test

import (
	"context"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/store"
)

func TestPOSIXConformance(t *testing.T) {
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	tlogtest.Run(t, tlogtest.Suite{Open: func(t *testing.T, dir string, s note.Signer, v note.Verifier) tlog.Log {
		return openPOSIX(t, dir, s, v)
	}, Signer: s, Verifier: v})
}

func TestJournalConformance(t *testing.T) {
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	tlogtest.Run(t, tlogtest.Suite{Open: func(t *testing.T, dir string, s note.Signer, v note.Verifier) tlog.Log {
		return openJournal(t, dir, s, v)
	}, Signer: s, Verifier: v})
}

func openPOSIX(t testing.TB, dir string, s note.Signer, v note.Verifier) tlog.Log {
	t.Helper()
	l, err := tlog.OpenPOSIX(context.Background(), tlog.POSIXOptions{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 100e6})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openJournal(t testing.TB, dir string, s note.Signer, v note.Verifier) tlog.Log {
	t.Helper()
	j, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.NewJournal(j, s, v)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
