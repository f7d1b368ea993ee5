package packaging

import (
	"os"
	"strings"
	"testing"

	agentconfig "github.com/edgeseal/edgeseal/agent/config"
	archiveconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/systemd"
)

// TestExampleConfigs: the packaged example configs are valid, name the
// directories the units provide, and sit where the units' ExecStart= looks.
func TestExampleConfigs(t *testing.T) {
	b, err := os.ReadFile("nfpm/etc/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agentconfig.Parse(b)
	if err != nil {
		t.Fatalf("nfpm/etc/agent.yaml: %v", err)
	}
	if ag.DataDir != "/var/lib/edgeseal" || ag.API.Socket != "/run/edgeseal/agent.sock" || ag.TPM != "device:/dev/tpmrm0" {
		t.Errorf("agent example: data_dir %q, api.socket %q, tpm %q: want the unit's StateDirectory, RuntimeDirectory and /dev/tpmrm0",
			ag.DataDir, ag.API.Socket, ag.TPM)
	}
	// API clients connect through group edgeseal-api, never the group
	// that may read /etc/edgeseal (the units' Group=, postinst's chgrp).
	_, agentUnit, err := systemd.Unit("agent")
	if err != nil {
		t.Fatal(err)
	}
	if ag.API.SocketGroup != "edgeseal-api" || strings.Contains(agentUnit, "\nGroup="+ag.API.SocketGroup+"\n") ||
		!strings.Contains(agentUnit, "\nSupplementaryGroups=tss "+ag.API.SocketGroup+"\n") {
		t.Errorf("agent example: api.socket_group %q: want edgeseal-api, a supplementary group of the unit and not its Group=", ag.API.SocketGroup)
	}
	b, err = os.ReadFile("nfpm/etc/archive.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := archiveconfig.Parse(b)
	if err != nil {
		t.Fatalf("nfpm/etc/archive.yaml: %v", err)
	}
	if ar.DataDir != "/var/lib/edgeseal-archive" || !strings.HasPrefix(ar.KeyFile, ar.DataDir+"/") {
		t.Errorf("archive example: data_dir %q, key_file %q: want both in the unit's StateDirectory", ar.DataDir, ar.KeyFile)
	}
	nfpmYAML, err := os.ReadFile("nfpm/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"agent", "archive"} {
		_, unit, err := systemd.Unit(kind)
		if err != nil {
			t.Fatal(err)
		}
		cfg := "/etc/edgeseal/" + kind + ".yaml"
		if !strings.Contains(unit, "ExecStart=/usr/bin/edgeseal "+kind+" --config "+cfg+"\n") {
			t.Errorf("%s unit: ExecStart does not run /usr/bin/edgeseal %s --config %s", kind, kind, cfg)
		}
		if !strings.Contains(string(nfpmYAML), "dst: "+cfg+"\n") {
			t.Errorf("nfpm.yaml does not install %s", cfg)
		}
	}
}
