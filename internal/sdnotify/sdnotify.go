// Package sdnotify speaks systemd's sd_notify protocol without libsystemd:
// readiness (READY=1), shutdown (STOPPING=1) and the watchdog (WATCHDOG=1)
// are datagrams sent to the unix socket named by $NOTIFY_SOCKET. When the
// variable is unset (not run by systemd, or not Type=notify) every call is a
// no-op.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// The states the daemons send.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Error is a failure to reach or write to the notify socket.
type Error struct {
	Socket string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("sdnotify: %s: %v", e.Socket, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ErrBadWatchdog is wrapped by WatchdogInterval for a malformed
// WATCHDOG_USEC or WATCHDOG_PID.
var ErrBadWatchdog = errors.New("sdnotify: bad watchdog environment")

// Notifier sends states to one notify socket. The zero value and a nil
// *Notifier are no-ops.
type Notifier struct {
	socket string // "" for no-op; "@..." is the abstract namespace
	getenv func(string) string
	log    *slog.Logger
}

// New returns a Notifier for $NOTIFY_SOCKET as read through getenv (nil:
// os.Getenv). log may be nil.
func New(getenv func(string) string, log *slog.Logger) *Notifier {
	if getenv == nil {
		getenv = os.Getenv
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{socket: getenv("NOTIFY_SOCKET"), getenv: getenv, log: log}
}

// Enabled reports whether a notify socket is set.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Notify sends state (one or more newline-separated KEY=VALUE lines).
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	name := n.socket
	if name[0] == '@' { // abstract namespace: a leading NUL byte
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return &Error{Socket: n.socket, Err: err}
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return &Error{Socket: n.socket, Err: err}
	}
	return nil
}

// WatchdogInterval returns the watchdog interval systemd asks for
// (WATCHDOG_USEC), or 0 when there is none or it is meant for another
// process (WATCHDOG_PID is set and not ours).
func (n *Notifier) WatchdogInterval() (time.Duration, error) {
	if !n.Enabled() {
		return 0, nil
	}
	usec := n.getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := n.getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("%w: WATCHDOG_PID=%q: %w", ErrBadWatchdog, pid, err)
		}
		if p != os.Getpid() {
			return 0, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, fmt.Errorf("%w: WATCHDOG_USEC=%q", ErrBadWatchdog, usec)
	}
	return time.Duration(u) * time.Microsecond, nil
}

// Start feeds the watchdog until ctx is done: every half interval it sends
// WATCHDOG=1 if alive() says the daemon's loops still run, and skips the
// beat otherwise, so systemd kills and restarts a wedged daemon. It returns
// at once when there is no watchdog. Send errors are logged, not fatal.
func (n *Notifier) Start(ctx context.Context, alive func() bool) {
	iv, err := n.WatchdogInterval()
	if err != nil {
		n.log.Warn("watchdog disabled", "err", err)
		return
	}
	if iv <= 0 {
		return
	}
	tick := time.NewTicker(iv / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if alive != nil && !alive() {
			n.log.Warn("watchdog: a loop is not alive; not feeding the watchdog")
			continue
		}
		if err := n.Notify(Watchdog); err != nil {
			n.log.Warn("watchdog", "err", err)
		}
	}
}
