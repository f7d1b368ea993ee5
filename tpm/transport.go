package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Transport is a connection to a TPM that sends one command and returns its
// response. It is go-tpm's transport.TPMCloser, aliased so that callers do
// not import go-tpm.
type Transport = transport.TPMCloser

// Kind names the sort of TPM a spec string selects.
type Kind string

// The kinds of TPM a spec string can select.
const (
	KindDevice    Kind = "device"
	KindSwtpm     Kind = "swtpm"
	KindSimulator Kind = "simulator"
)

// Spec is a parsed TPM spec string: "device:/dev/tpmrm0", "swtpm:HOST:PORT"
// or "simulator:DIR".
type Spec struct {
	Kind Kind
	Arg  string // device path, host:port or simulator directory
}

// ParseSpec parses a TPM spec string.
func ParseSpec(s string) (Spec, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return Spec{}, &SpecError{Spec: s, Reason: "want KIND:ARG"}
	}
	switch Kind(kind) {
	case KindDevice, KindSimulator:
	case KindSwtpm:
		if _, _, err := net.SplitHostPort(arg); err != nil {
			return Spec{}, &SpecError{Spec: s, Reason: "swtpm wants HOST:PORT"}
		}
	default:
		return Spec{}, &SpecError{Spec: s, Reason: "unknown kind " + kind}
	}
	return Spec{Kind: Kind(kind), Arg: arg}, nil
}

// String gives the spec back in its textual form.
func (s Spec) String() string { return string(s.Kind) + ":" + s.Arg }

// dial opens the transport a spec names.
func dial(ctx context.Context, sp Spec, opts Options) (Transport, error) {
	switch sp.Kind {
	case KindDevice:
		t, err := linuxtpm.Open(sp.Arg)
		if err != nil {
			return nil, fmt.Errorf("tpm: open %s: %w", sp.Arg, err)
		}
		return t, nil
	case KindSwtpm:
		return DialSwtpm(ctx, sp.Arg)
	case KindSimulator:
		if opts.Simulator == nil {
			return nil, &SpecError{Spec: sp.String(), Reason: "simulator not built in (needs cgo and Options.Simulator)"}
		}
		t, err := opts.Simulator(sp.Arg)
		if err != nil {
			return nil, fmt.Errorf("tpm: simulator: %w", err)
		}
		return t, nil
	}
	return nil, &SpecError{Spec: sp.String(), Reason: "unknown kind"}
}

// maxResponse bounds a TPM response; TPM2 responses are at most a few KiB.
const maxResponse = 1 << 16

// cmdTimeout bounds one TPM command on a network transport.
const cmdTimeout = 2 * time.Minute

// rawTCP speaks the plain TPM command stream that swtpm's --server port
// expects: the command bytes go out, the response header (tag, size, code)
// and then the rest of the response come back.
//
// swtpm serves one connection at a time, so the connection is closed once
// it has been idle for swtpmIdle and dialled again at the next command:
// other clients (tpm2-tools, an operator's tpm2_pcrread) get the TPM
// between two bursts of commands. swtpm keeps loaded objects and sessions
// across connections.
type rawTCP struct {
	mu     sync.Mutex
	addr   string
	conn   net.Conn // nil while released
	idle   *time.Timer
	closed bool
	broken error // set after an I/O error: the stream is out of step
}

// swtpmIdle is how long an unused swtpm connection is kept open.
var swtpmIdle = 10 * time.Millisecond

// DialSwtpm connects to the TPM command port of a swtpm process.
func DialSwtpm(ctx context.Context, addr string) (Transport, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tpm: dial swtpm %s: %w", addr, err)
	}
	r := &rawTCP{addr: addr, conn: c}
	r.idle = time.AfterFunc(swtpmIdle, r.release)
	return r, nil
}

// release closes the connection when it is idle.
func (r *rawTCP) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn = nil
	}
}

// Send writes one command and reads its whole response. After an I/O
// error every later Send fails: the caller reopens.
func (r *rawTCP) Send(cmd []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken != nil {
		return nil, fmt.Errorf("tpm: swtpm connection unusable: %w", r.broken)
	}
	if r.closed {
		return nil, fmt.Errorf("tpm: swtpm connection closed")
	}
	r.idle.Stop()
	if r.conn == nil {
		c, err := net.DialTimeout("tcp", r.addr, cmdTimeout)
		if err != nil {
			return nil, fmt.Errorf("tpm: dial swtpm %s: %w", r.addr, err)
		}
		r.conn = c
	}
	rsp, err := r.roundTrip(cmd)
	if err != nil {
		r.broken = err
		return nil, err
	}
	r.idle.Reset(swtpmIdle)
	return rsp, nil
}

func (r *rawTCP) roundTrip(cmd []byte) ([]byte, error) {
	if err := r.conn.SetDeadline(time.Now().Add(cmdTimeout)); err != nil {
		return nil, fmt.Errorf("tpm: swtpm deadline: %w", err)
	}
	if _, err := r.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("tpm: swtpm write: %w", err)
	}
	var hdr [10]byte
	if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("tpm: swtpm read header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > maxResponse {
		return nil, fmt.Errorf("tpm: swtpm response size %d: %w", size, errBadResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(r.conn, rsp[10:]); err != nil {
		return nil, fmt.Errorf("tpm: swtpm read body: %w", err)
	}
	return rsp, nil
}

// Close closes the connection.
func (r *rawTCP) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle.Stop()
	r.closed = true
	if r.conn == nil {
		return nil
	}
	err := r.conn.Close()
	r.conn = nil
	return err
}

var errBadResponse = errors.New("malformed TPM response")
