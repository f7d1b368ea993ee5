// Package mariadbtest runs a real MariaDB server for tests:
// mariadb-install-db on a temporary directory, then mariadbd as the
// current user (no system service, no configuration file read), reachable
// only on a unix socket in that directory (no TCP listener), stopped and
// removed at the end of the test. Database gives each caller a fresh
// database and its DSN (github.com/go-sql-driver/mysql form).
//
// Start skips the test when MariaDB is not installed (Debian:
// mariadb-server-core and mariadb-client-core), unless the environment
// has CI=true, where it fails.
package mariadbtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Server is a running (or stopped) mariadbd.
type Server struct {
	Dir    string // the data directory's parent: socket, log, data/
	Socket string

	t    testing.TB
	bin  string
	log  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	n    int // databases made
}

// find returns the path of a MariaDB program, or "".
func find(name string, dirs ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isFile(p) {
			return p
		}
	}
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Start installs a fresh data directory and starts mariadbd on it; the
// server is killed and the directory removed at the end of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := find("mariadbd", "/usr/sbin", "/usr/local/sbin")
	install := find("mariadb-install-db", "/usr/bin", "/usr/local/bin")
	if bin == "" || install == "" {
		testenv.Missing(t, "mariadbtest: mariadbd or mariadb-install-db not installed (Debian: mariadb-server-core mariadb-client-core)")
	}
	// A short path: a unix socket's path is at most 107 bytes.
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock"), t: t, bin: bin, log: filepath.Join(dir, "mariadbd.log")}
	data := filepath.Join(dir, "data")
	// Small InnoDB files: the install and the start stay quick.
	small := []string{"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"}
	var asUser []string
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		asUser = []string{"--user=root"}
	}
	// Temporary tables in the server's own directory: installs running
	// at once in the shared /tmp have clashed on their names.
	small = append(small, "--tmpdir="+dir)
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, asUser...)
	out, err := exec.CommandContext(t.Context(), install, append(args, small...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadbtest: mariadb-install-db: %v\n%s", err, out)
	}
	s.args = append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + s.Socket, "--skip-networking",
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--log-error=" + s.log, "--max-allowed-packet=64M"}, small...)
	s.args = append(s.args, asUser...)
	t.Cleanup(s.Kill)
	if err := s.start(); err != nil {
		t.Fatalf("mariadbtest: %v\n%s", err, s.Log())
	}
	return s
}

// Log returns what mariadbd wrote so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// DSN returns the DSN of database db as root over the socket.
func (s *Server) DSN(db string) string {
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr, c.DBName = "root", "unix", s.Socket, db
	return c.FormatDSN()
}

// Database creates a fresh database and returns its DSN.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("t%d", s.n)
	s.mu.Unlock()
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("mariadbtest: create database: %v", err)
	}
	return s.DSN(name)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("already running")
	}
	cmd := exec.Command(s.bin, s.args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("mariadbd exited at start")
		case <-ctx.Done():
			return fmt.Errorf("mariadbd not answering on %s: %w", s.Socket, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops mariadbd with SIGTERM (a clean shutdown) and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill stops mariadbd with SIGKILL: it recovers at the next start.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Restart starts a stopped server again on the same data directory.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("mariadbtest: restart: %v\n%s", err, s.Log())
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
