package simulator_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// clockInfoVector is one case of testdata/clockinfo-v1.json: the bytes of
// a clock info file and what ParseClockInfo makes of them.
type clockInfoVector struct {
	Description  string `json:"description"`
	File         string `json:"file"`
	OK           bool   `json:"ok"`
	ResetCount   uint32 `json:"resetCount"`
	RestartCount uint32 `json:"restartCount"`
	Clock        uint64 `json:"clock"`
	Reason       string `json:"reason"` // tpm.StateError.Reason when not OK
}

func clockInfoVectors(t testing.TB) []clockInfoVector {
	raw, err := os.ReadFile("testdata/clockinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []clockInfoVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestClockInfoVectors(t *testing.T) {
	vs := clockInfoVectors(t)
	if len(vs) < 10 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		c, err := simulator.ParseClockInfo([]byte(v.File))
		if v.OK {
			want := simulator.ClockInfo{V: 1, ResetCount: v.ResetCount, RestartCount: v.RestartCount, Clock: v.Clock}
			if err != nil || c != want {
				t.Errorf("%s: parsed %+v, %v; want %+v", v.Description, c, err, want)
			}
			if got := string(simulator.FormatClockInfo(c)); got != v.File {
				t.Errorf("%s: formats as %q", v.Description, got)
			}
			continue
		}
		var se *tpm.StateError
		if !errors.As(err, &se) || se.File != simulator.ClockInfoFile || se.Reason != v.Reason {
			t.Errorf("%s: error %v, want a *tpm.StateError on %s with reason %q", v.Description, err, simulator.ClockInfoFile, v.Reason)
		}
	}
}

func TestClockInfoBefore(t *testing.T) {
	for _, c := range []struct {
		a, b simulator.ClockInfo
		want bool
	}{
		{simulator.ClockInfo{ResetCount: 1}, simulator.ClockInfo{ResetCount: 2}, true},
		{simulator.ClockInfo{ResetCount: 2}, simulator.ClockInfo{ResetCount: 1, RestartCount: 9}, false},
		{simulator.ClockInfo{ResetCount: 2, RestartCount: 1}, simulator.ClockInfo{ResetCount: 2, RestartCount: 2}, true},
		{simulator.ClockInfo{ResetCount: 2, Clock: 1}, simulator.ClockInfo{ResetCount: 2, Clock: 9}, false}, // same boot
	} {
		if got := c.a.Before(c.b); got != c.want {
			t.Errorf("%+v before %+v: %v", c.a, c.b, got)
		}
	}
}

func ExampleParseClockInfo() {
	c, err := simulator.ParseClockInfo([]byte(`{"v":1,"resetCount":3,"restartCount":0,"clock":5000}` + "\n"))
	fmt.Println(c.ResetCount, c.RestartCount, c.Clock, err)
	_, err = simulator.ParseClockInfo([]byte(`{"v":1,"resetCount":3,"restartCount":0,"clock":5000,"safe":true}` + "\n"))
	fmt.Println(err != nil)
	fmt.Printf("%s", simulator.FormatClockInfo(simulator.ClockInfo{ResetCount: 4, Clock: 6000}))
	// Output:
	// 3 0 5000 <nil>
	// true
	// {"v":1,"resetCount":4,"restartCount":0,"clock":6000}
}
