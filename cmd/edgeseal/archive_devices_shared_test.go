package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// TestArchiveDevicesSharedRegistry: with archive_state.engine mysql the
// operator commands of two replicas' hosts (each its own data_dir, one
// database) change one registry: a device enrolled through one config
// and approved through the other is listed approved by both, and
// revoked through the first is listed revoked by the second. The first
// command on the empty database brings the devices.json of its data_dir
// along; neither data_dir gets a devices.json of its own afterwards.
func TestArchiveDevicesSharedRegistry(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := filepath.Join(t.TempDir(), "state.dsn")
	if err := os.WriteFile(dsn, []byte(srv.Database(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := t.Context()
	var cfgs, datas []string
	for range 2 {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "archive.yaml")
		text := fmt.Sprintf("data_dir: data\narchive_state:\n  engine: mysql\n  mysql_dsn_file: %s\n", dsn)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cfgs, datas = append(cfgs, cfg), append(datas, data)
	}
	// An archive moving to mysql: its devices.json (one device pending)
	// fills the empty database.
	oc, err := bundletest.NewChain(ctx, nil, 0, bundletest.Options{Site: "site1", Device: "old"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := archive.OpenDevices(filepath.Join(datas[0], "devices.json"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	enrollTrust(t, d, oc)

	c, err := bundletest.NewChain(ctx, nil, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req := filepath.Join(t.TempDir(), "DEVICE.json")
	if err := os.WriteFile(req, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmdArchiveEnrollFile(ctx, []string{req, "--config", cfgs[0]}, io.Discard, log); err != nil {
		t.Fatalf("enroll-file at replica 1: %v", err)
	}
	if err := cmdArchiveDevices(ctx, []string{"approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--config", cfgs[1]}, io.Discard, log); err != nil {
		t.Fatalf("approve at replica 2: %v", err)
	}
	list := func(i int) map[string]archive.DeviceInfo {
		t.Helper()
		var out bytes.Buffer
		if err := cmdArchiveDevices(ctx, []string{"list", "--json", "--config", cfgs[i]}, &out, log); err != nil {
			t.Fatal(err)
		}
		var infos []archive.DeviceInfo
		if err := json.Unmarshal(out.Bytes(), &infos); err != nil {
			t.Fatalf("list --json: %v\n%s", err, out.Bytes())
		}
		m := map[string]archive.DeviceInfo{}
		for _, info := range infos {
			m[info.Name] = info
		}
		return m
	}
	for i := range 2 {
		m := list(i)
		if m["site1/dev1"].Status != archive.StatusApproved || m["site1/dev1"].ApprovedBy != "alice" || m["site1/old"].Status != archive.StatusPending || len(m) != 2 {
			t.Fatalf("replica %d lists %+v, want dev1 approved by alice and old pending", i+1, m)
		}
	}
	if err := cmdArchiveDevices(ctx, []string{"revoke", "site1/dev1", "--reason", "stolen", "--config", cfgs[0]}, io.Discard, log); err != nil {
		t.Fatalf("revoke at replica 1: %v", err)
	}
	if m := list(1); m["site1/dev1"].Status != archive.StatusRevoked || m["site1/dev1"].RevokeReason != "stolen" {
		t.Fatalf("replica 2 lists %+v after the revocation at replica 1", m["site1/dev1"])
	}
	if _, err := os.Lstat(filepath.Join(datas[1], "devices.json")); !os.IsNotExist(err) {
		t.Fatalf("replica 2 wrote a devices.json of its own: %v", err)
	}
}

// enrollTrust enrolls c's DEVICE.json in d.
func enrollTrust(t *testing.T, d *archive.Devices, c *bundletest.Chain) {
	t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
}
