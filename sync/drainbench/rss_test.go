package drainbench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vmHWM reads the peak resident set size (VmHWM, bytes) from the text of
// a /proc/<pid>/status file.
func vmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM line")
}

// TestVmHWM: the peak RSS (the archive child's peakRSS) is read from a
// status file in kB, a status without it is an error, and this
// process's own reads as more than nothing.
func TestVmHWM(t *testing.T) {
	if n, err := vmHWM([]byte("Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n")); n != 2<<20 || err != nil {
		t.Fatalf("%d %v, want 2 MiB", n, err)
	}
	if _, err := vmHWM([]byte("Name:\tx\nVmRSS:\t 1024 kB\n")); err == nil {
		t.Fatal("no VmHWM read as a figure")
	}
	if _, err := vmHWM([]byte("VmHWM:\t lots kB\n")); err == nil {
		t.Fatal("a VmHWM that is not a number read as a figure")
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal("no /proc:", err)
	}
	if n, err := vmHWM(st); err != nil || n <= 0 {
		t.Fatalf("own peak RSS %d %v", n, err)
	}
}
