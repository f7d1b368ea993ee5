package store

// TEMPORARY open-time probe (removed before hand-off). Gated by env.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestZZOpenProbeBuild(t *testing.T) {
	dir := os.Getenv("OPENPROBE_BUILD")
	if dir == "" {
		t.Skip()
	}
	n, _ := strconv.ParseUint(os.Getenv("OPENPROBE_N"), 10, 64)
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	es := make([]Entry, 256)
	for i := range es {
		es[i] = Entry{Build: build("open-bench")}
	}
	for j.Size() < n {
		k := min(uint64(len(es)), n-j.Size())
		if _, err := j.AppendBatch(ctx, es[:k]); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("close %v", time.Since(start))
}

func TestZZOpenProbeOpen(t *testing.T) {
	dir := os.Getenv("OPENPROBE_OPEN")
	if dir == "" {
		t.Skip()
	}
	k, _ := strconv.Atoi(os.Getenv("OPENPROBE_K"))
	k = max(k, 1)
	ctx := context.Background()
	for i := range k {
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		start := time.Now()
		j, err := Open(ctx, Options{Dir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		t.Logf("OPEN wall=%.1fms cpu=%.1fms", float64(d.Microseconds())/1000, float64(cpu.Microseconds())/1000)
		start = time.Now()
		err = j.Close()
		t.Logf("open %d: %v size %d; close %v", i, d, j.Size(), time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
	}
}

type tsLogger struct {
	t     *testing.T
	start time.Time
}

func (l tsLogger) p(lv, f string, a ...any) {
	l.t.Logf("%8.2fms %s %s", float64(time.Since(l.start).Microseconds())/1000, lv, fmt.Sprintf(f, a...))
}
func (l tsLogger) Errorf(f string, a ...any)   { l.p("E", f, a...) }
func (l tsLogger) Warningf(f string, a ...any) { l.p("W", f, a...) }
func (l tsLogger) Infof(f string, a ...any)    { l.p("I", f, a...) }
func (l tsLogger) Debugf(f string, a ...any)   { l.p("D", f, a...) }

func TestZZOpenProbeBadger(t *testing.T) {
	dir := os.Getenv("OPENPROBE_BADGER")
	if dir == "" {
		t.Skip()
	}
	o := Options{Dir: dir}
	_ = o.setDefaults()
	start := time.Now()
	lg := tsLogger{t, start}
	if err := repairEmptyValueLogs(dir, o.Logger); err != nil {
		t.Fatal(err)
	}
	lg.p("-", "repair done")
	db, err := badger.Open(badgerOptions(o, &badgerLogger{l: o.Logger}).WithLogger(lg))
	if err != nil {
		t.Fatal(err)
	}
	lg.p("-", "badger.Open returned")
	j := &Journal{opts: o, db: db}
	if err := j.load(); err != nil {
		t.Fatal(err)
	}
	lg.p("-", "load done size %d", j.Size())
	lg.start = time.Now()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	lg.p("-", "closed")
}

func TestZZOpenProbeWriter(t *testing.T) {
	dir := os.Getenv("OPENPROBE_WRITER")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	es := make([]Entry, 256)
	for i := range es {
		es[i] = Entry{Build: build("open-bench")}
	}
	fmt.Println("writing")
	done := make(chan struct{})
	for range 4 {
		go func() {
			for {
				if _, err := j.AppendBatch(ctx, es); err != nil {
					fmt.Println(err)
					close(done)
					return
				}
			}
		}()
	}
	<-done
}
