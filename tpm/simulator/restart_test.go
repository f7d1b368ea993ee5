//go:build cgo

package simulator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// childEnv makes the test binary a child process that opens the TPM on a
// simulator directory, quotes, prints the quote's clock info as one JSON
// line and then closes (mode "close") or waits to be killed (mode "kill").
const childEnv = "EDGESEAL_SIM_CHILD"

type childSpec struct {
	Dir  string `json:"dir"`
	Mode string `json:"mode"`
}

// TestMain runs simChild instead of the tests when childEnv is set.
func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		if err := simChild(raw); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// simChild is the child process of spec raw.
func simChild(raw string) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return err
	}
	ctx := context.Background()
	tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(spec.Dir, "sim"), tpm.Options{StateDir: filepath.Join(spec.Dir, "state"), Simulator: simulator.Open, Create: true})
	if err != nil {
		return err
	}
	q, err := tp.Quote(ctx, []byte("nonce"))
	if err != nil {
		return err
	}
	a, err := attest.ParseAttest(q.Attest)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(simulator.ClockInfo{V: 1, ResetCount: a.Clock.ResetCount, RestartCount: a.Clock.RestartCount, Clock: a.Clock.Clock})
	fmt.Printf("QUOTE %s\n", line)
	if spec.Mode == "kill" {
		time.Sleep(10 * time.Minute)
	}
	return tp.Close()
}

// child runs one child process on dir and returns the clock info of its
// quote; in mode "kill" it SIGKILLs the child as soon as the quote is out,
// before Close.
func child(t *testing.T, dir, mode string) simulator.ClockInfo {
	t.Helper()
	spec, _ := json.Marshal(childSpec{Dir: dir, Mode: mode})
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var other []string
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "QUOTE ")
		if !ok {
			other = append(other, sc.Text())
			continue
		}
		var ci simulator.ClockInfo
		if err := json.Unmarshal([]byte(line), &ci); err != nil {
			t.Fatal(err)
		}
		if mode == "kill" {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		for sc.Scan() { // drain
		}
		if err := cmd.Wait(); mode != "kill" && err != nil {
			t.Fatalf("child: %v", err)
		}
		return ci
	}
	cmd.Wait()
	t.Fatalf("child printed no quote:\n%s", strings.Join(other, "\n"))
	return simulator.ClockInfo{}
}

// Each process that opens a simulator directory is a reboot of its TPM:
// the reset count of its quotes rises above every earlier process's and
// the clock never goes back, whether the earlier process closed the TPM
// or was SIGKILLed right after its quote left it.
func TestRestartsMoveForward(t *testing.T) {
	dir := t.TempDir()
	var prev simulator.ClockInfo
	for i, mode := range []string{"close", "close", "kill", "close", "kill", "kill", "close"} {
		ci := child(t, dir, mode)
		if i > 0 && (!prev.Before(ci) || ci.ResetCount <= prev.ResetCount || ci.Clock <= prev.Clock) {
			t.Fatalf("process %d: quote at reset/restart %d/%d clock %d, the process before (%s) quoted %d/%d clock %d",
				i, ci.ResetCount, ci.RestartCount, ci.Clock, mode, prev.ResetCount, prev.RestartCount, prev.Clock)
		}
		b, err := os.ReadFile(filepath.Join(dir, "sim", simulator.ClockInfoFile))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := simulator.ParseClockInfo(b)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Before(ci) || rec.Clock < ci.Clock {
			t.Fatalf("process %d (%s): record %+v below its quote %+v", i, mode, rec, ci)
		}
		prev = ci
	}
}

// Sim.Reset is a reboot: the keys stay, the reset count rises and is
// recorded at once; and a reopen in the same process stays above it.
func TestResetIsRecorded(t *testing.T) {
	dir := t.TempDir()
	s, err := simulator.OpenSim(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := recorded(t, dir)
	ek := ekName(t, s)
	if err := s.Reset(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	after := recorded(t, dir)
	if ekName(t, s) != ek {
		s.Close()
		t.Fatal("the EK changed across Reset: the hierarchy seeds were lost")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after.ResetCount != first.ResetCount+1 || after.Clock < first.Clock {
		t.Fatalf("after Reset the record is %+v, at open it was %+v", after, first)
	}
	s, err = simulator.OpenSim(dir)
	if err != nil {
		t.Fatal(err)
	}
	again := recorded(t, dir)
	s.Close()
	if !after.Before(again) || again.Clock < after.Clock {
		t.Fatalf("reopened at %+v, below the recorded %+v", again, after)
	}
}

// A record the simulator cannot trust stops Open: it would otherwise
// start from nothing and show lower counts than before.
func TestBadClockInfoRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, simulator.ClockInfoFile), []byte(`{"v":1,"resetCount":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := simulator.OpenSim(dir)
	if err == nil {
		s.Close()
		t.Fatal("opened with a bad clockinfo.json")
	}
	var se *tpm.StateError
	if !errors.As(err, &se) || se.File != simulator.ClockInfoFile {
		t.Fatalf("error %v, want a *tpm.StateError naming %s", err, simulator.ClockInfoFile)
	}
}

func recorded(t *testing.T, dir string) simulator.ClockInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, simulator.ClockInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := simulator.ParseClockInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// ekName is the name of the simulator's ECC EK, which its seed fixes.
func ekName(t *testing.T, s *simulator.Sim) string {
	t.Helper()
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
	}.Execute(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}).Execute(s); err != nil {
		t.Fatal(err)
	}
	return string(rsp.Name.Buffer)
}
