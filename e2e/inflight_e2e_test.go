package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent/api"
)

// TestInflightBoundE2E runs the real agent with api.max_inflight equal to
// api.max_body (64 KiB): while a client holds a 60 KiB export body in
// flight, another export of 10 KiB is answered 503 busy with Retry-After
// (not read into memory); once the first client goes, it is taken.
func TestInflightBoundE2E(t *testing.T) {
	needAgent(t)
	a := newAgentDir(t, agentOpts{sealEvery: 1000, sealInterval: "1h", maxBody: "64KiB"})
	setAPIKeys(t, a, "  max_inflight: 64KiB\n")
	p := a.start(t, true)
	defer p.stop()

	c := unixClient(a.socket)
	csv := []byte("a\n" + strings.Repeat("x", 10<<10) + "\n")
	post := func(id string) httpReply {
		r, err := do(t, c, "POST", "http://agent/v1/exports", tokAppsmith, "text/csv", csv,
			api.HeaderID, id, api.HeaderWorkflow, "monthly-report", api.HeaderApp, "appsmith",
			api.HeaderClassification, "internal", api.HeaderDestination, "archive")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// hold opens a connection that announces a 60 KiB export and sends
	// one byte of it.
	hold := func() net.Conn {
		held, err := net.Dial("unix", a.socket)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(held, "POST /v1/exports HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", tokN8N, 60<<10)
		return held
	}
	// answered reports whether the agent answered the held request (it
	// lost the race for room to the probe) instead of reading its body.
	answered := func(held net.Conn) bool {
		held.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := held.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	deadline := time.Now().Add(time.Minute)
	var r httpReply
	var held net.Conn
	for i := 0; ; i++ { // until the held body has its share and the probe is refused
		held = hold()
		r = post(fmt.Sprintf("busy-%d", i))
		if r.status == http.StatusServiceUnavailable && !answered(held) || time.Now().After(deadline) {
			break
		}
		held.Close()
	}
	defer held.Close()
	var eb api.ErrorBody
	if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &eb) != nil || eb.Error.Code != api.CodeBusy || r.header.Get("Retry-After") == "" {
		t.Fatalf("export while 60 KiB of 64 KiB are in flight: %d %s Retry-After %q, want 503 busy with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	held.Close()
	for i := 0; ; i++ {
		if r = post(fmt.Sprintf("after-%d", i)); r.status == http.StatusCreated || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.status != http.StatusCreated {
		t.Fatalf("export after the held body went: %d %s, want 201", r.status, r.body)
	}
}
