package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

// maxExposure is the highest `systemd-analyze security` score we accept.
const maxExposure = 2.0

var exposureRE = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9]+\.[0-9]+)`)

// systemdAnalyze finds systemd-analyze: a missing tool fails the test in CI
// (the `systemd` Debian package belongs in the CI image) and skips it
// elsewhere.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze not found (install the Debian package systemd): %v", err)
	}
	return p
}

func TestSecurityExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	for _, unit := range []string{AgentUnitName, ArchiveUnitName} {
		t.Run(unit, func(t *testing.T) {
			path, err := filepath.Abs(unit) // the file here, not an installed unit
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
			// The command exits non-zero only above --threshold (default 100).
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
			}
			m := exposureRE.FindStringSubmatch(string(out))
			if m == nil || m[1] != unit {
				t.Fatalf("no exposure level for %s in output:\n%s", unit, out)
			}
			score, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s exposure %.1f", unit, score)
			if score > maxExposure {
				t.Errorf("%s exposure %.1f > %.1f:\n%s", unit, score, maxExposure, out)
			}
		})
	}
}

// TestVerify runs `systemd-analyze verify` on copies of the units whose
// ExecStart points at an executable in a temp dir (verify checks it exists).
func TestVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "edgeseal")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, k := range []string{"agent", "archive"} {
		name, text, err := Unit(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "/usr/bin/edgeseal", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnits pins the settings the daemons and the installer rely on.
func TestUnits(t *testing.T) {
	for _, c := range []struct {
		kind string
		want []string
		not  []string
	}{
		{"agent", []string{"Type=notify", "WatchdogSec=", "User=edgeseal", "SupplementaryGroups=tss",
			"DeviceAllow=/dev/tpmrm0 rw", "DevicePolicy=closed", "RuntimeDirectory=edgeseal\n",
			"IPAddressDeny=any", "IPAddressAllow=localhost", "Environment=GOMEMLIMIT=56MiB",
			"ExecStart=/usr/bin/edgeseal agent --config /etc/edgeseal/agent.yaml"},
			[]string{"PrivateDevices=yes", "PrivateUsers=yes"}},
		{"archive", []string{"Type=notify", "WatchdogSec=", "User=edgeseal", "PrivateDevices=yes",
			"StateDirectory=edgeseal-archive", "ExecStart=/usr/bin/edgeseal archive --config /etc/edgeseal/archive.yaml"},
			[]string{"IPAddressDeny="}},
	} {
		_, text, err := Unit(c.kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s unit lacks %q", c.kind, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(text, n) {
				t.Errorf("%s unit has %q", c.kind, n)
			}
		}
	}
	if _, _, err := Unit("nope"); err == nil {
		t.Error("Unit(nope): no error")
	}
}
