package agentd

import (
	"slices"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/sync"
)

// TestAlarmKinds: every kind the core raises is a device alert kind the
// archive counts by name, and each makes a well-formed device alert.
func TestAlarmKinds(t *testing.T) {
	if !slices.Equal(agent.AlarmKinds, sync.KnownDeviceAlertKinds) {
		t.Fatalf("agent alarm kinds %v, device alert kinds %v", agent.AlarmKinds, sync.KnownDeviceAlertKinds)
	}
	for _, k := range agent.AlarmKinds {
		a := sync.NewDeviceAlert("site", "dev", k, time.Now(), -1, "detail")
		if _, err := a.Marshal(); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}
