package tpm

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// fakeServer answers each command with resp(cmd), one connection at a
// time as swtpm does.
func fakeServer(t *testing.T, resp func(cmd []byte) []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			serveFake(c, resp)
		}
	}()
	return l.Addr().String()
}

func serveFake(c net.Conn, resp func(cmd []byte) []byte) {
	func() {
		defer c.Close()
		for {
			var hdr [10]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr[2:6])-10)
			if _, err := io.ReadFull(c, body); err != nil {
				return
			}
			// write in two pieces, splitting the header
			r := resp(append(hdr[:], body...))
			if _, err := c.Write(r[:5]); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
			if _, err := c.Write(r[5:]); err != nil {
				return
			}
		}
	}()
}

// TestRawTCPReleasesIdleConnection: after swtpmIdle without a command the
// connection is closed (swtpm then serves another client) and the next
// command dials again.
func TestRawTCPReleasesIdleConnection(t *testing.T) {
	addr := fakeServer(t, func(cmd []byte) []byte {
		return []byte{0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 1, 2, 3, 4}
	})
	tr, err := DialSwtpm(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0}
	if _, err := tr.Send(cmd); err != nil {
		t.Fatal(err)
	}
	r := tr.(*rawTCP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		released := r.conn == nil
		r.mu.Unlock()
		if released {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle connection not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rsp, err := tr.Send(cmd); err != nil || len(rsp) != 14 {
		t.Fatalf("send after release: %v", err)
	}
}

func TestRawTCPFraming(t *testing.T) {
	// A response written in two pieces still arrives whole.
	addr := fakeServer(t, func(cmd []byte) []byte {
		return []byte{0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 1, 2, 3, 4}
	})
	tr, err := DialSwtpm(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0}
	for range 3 {
		rsp, err := tr.Send(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if len(rsp) != 14 || rsp[13] != 4 {
			t.Fatalf("response % x", rsp)
		}
	}
}

func TestRawTCPBadSizeBreaksConnection(t *testing.T) {
	addr := fakeServer(t, func(cmd []byte) []byte {
		return []byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	})
	tr, err := DialSwtpm(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0}
	if _, err := tr.Send(cmd); err == nil {
		t.Fatal("accepted a 4 GiB response size")
	}
	if _, err := tr.Send(cmd); err == nil {
		t.Fatal("Send after a framing error succeeded")
	}
}
