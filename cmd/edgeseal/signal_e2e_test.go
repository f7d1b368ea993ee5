package main

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalEnds: a command blocked where its context does not reach
// (here the open of a FIFO no one writes) survives the first SIGTERM,
// which only cancels the context, and ends on the second.
func TestSecondSignalEnds(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "admins.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	cmd := exec.Command(agentBin, "policy", "verify", "--admins", fifo, filepath.Join(dir, "signed.json"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(500 * time.Millisecond) // let it reach the open
	for i := 0; i < 2; i++ {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			break // it ended on the first one: fine too
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("two SIGTERMs did not end a command blocked in open")
	}
}
