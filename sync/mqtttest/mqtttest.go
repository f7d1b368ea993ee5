// Package mqtttest runs a real Mosquitto broker for tests: a temporary
// config with persistence, a free port on 127.0.0.1, optional TLS with
// client certificates (see NewPKI), and Stop/Restart that keep the
// persisted sessions and queued messages.
//
// Start skips the test when mosquitto is not installed, unless the
// environment has CI=true, where it fails.
package mqtttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Options configure Start.
type Options struct {
	// TLS, when set, makes the listener TLS-only with these files.
	TLS *TLSFiles
	// Extra lines appended to mosquitto.conf.
	Extra []string
}

// TLSFiles are PEM files for the broker's TLS listener.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	RequireCertificate        bool
}

// Broker is a running (or stopped) mosquitto process.
type Broker struct {
	URL  string // tcp://127.0.0.1:PORT or ssl://127.0.0.1:PORT
	Port int
	Dir  string

	t    testing.TB
	bin  string
	conf string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Find returns the mosquitto binary, or "" when it is not installed.
func Find() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start starts mosquitto with opts (nil: plain TCP) and stops it at the
// end of the test.
func Start(t testing.TB, opts *Options) *Broker {
	t.Helper()
	bin := Find()
	if bin == "" {
		testenv.Missing(t, "mqtttest: mosquitto not installed")
	}
	if opts == nil {
		opts = &Options{}
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	b := &Broker{Port: port, Dir: dir, t: t, bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	scheme := "tcp"
	lines := []string{
		"listener " + strconv.Itoa(port) + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"max_queued_messages 0",
		"set_tcp_nodelay true", // as the shipped config: small receipts are not held back
		"log_type error",
		"log_type warning",
		"log_type notice",
	}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root") // do not drop to "mosquitto", keep the temp dir writable
	}
	if opts.TLS != nil {
		scheme = "ssl"
		lines = append(lines, "cafile "+opts.TLS.CAFile, "certfile "+opts.TLS.CertFile, "keyfile "+opts.TLS.KeyFile,
			"require_certificate "+strconv.FormatBool(opts.TLS.RequireCertificate))
	}
	lines = append(lines, opts.Extra...)
	var conf bytes.Buffer
	for _, l := range lines {
		conf.WriteString(l + "\n")
	}
	if err := os.WriteFile(b.conf, conf.Bytes(), 0o600); err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	b.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	t.Cleanup(b.kill)
	if err := b.start(); err != nil {
		t.Fatalf("mqtttest: %v\n%s", err, b.Log())
	}
	return b
}

// Log returns what mosquitto wrote so far.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.log)
	return string(data)
}

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return fmt.Errorf("already running")
	}
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			b.cmd = nil
			return fmt.Errorf("mosquitto exited at start")
		case <-ctx.Done():
			return fmt.Errorf("mosquitto not listening on %d: %w", b.Port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops mosquitto with SIGTERM (it saves its persistence file) and
// waits for it to exit.
func (b *Broker) Stop() {
	b.t.Helper()
	b.signal(syscall.SIGTERM)
}

// Kill stops mosquitto with SIGKILL: what it did not save is lost.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

func (b *Broker) kill() { b.signal(syscall.SIGKILL) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped broker again on the same port and persistence
// directory (it stops a running one first, with SIGTERM).
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	var err error
	for i := 0; i < 50; i++ { // the port can take a moment to be free again
		if err = b.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("mqtttest: restart: %v\n%s", err, b.Log())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CPUTime is the CPU time (user and system) the running mosquitto
// process has used so far, from /proc (Linux).
func (b *Broker) CPUTime() (time.Duration, error) {
	b.mu.Lock()
	cmd := b.cmd
	b.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("mosquitto is not running")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", cmd.Process.Pid)
	}
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks, nil
}
