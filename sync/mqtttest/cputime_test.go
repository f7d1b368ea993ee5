package mqtttest

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// TestBrokerCPUTime: the running broker's CPU time is read and does not
// go back; a stopped broker's is an error.
func TestBrokerCPUTime(t *testing.T) {
	b := Start(t, nil)
	c0, err := b.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	// Make the broker work: connections opened and closed.
	for range 200 {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(b.Port))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	c1, err := b.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	if c1 < c0 || c0 < 0 {
		t.Fatalf("CPU time %v then %v", c0, c1)
	}
	b.Stop()
	if _, err := b.CPUTime(); err == nil {
		t.Fatal("CPUTime of a stopped broker: no error")
	}
}
