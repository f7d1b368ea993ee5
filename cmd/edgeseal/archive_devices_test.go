package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveDevicesBadName: a device name that is not SITE/NAME is a
// usage error naming the form (not "not enrolled"), and nothing is
// created in the data directory.
func TestArchiveDevicesBadName(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, args := range [][]string{
		{"approve", "notaname", "--key", "sha256:00", "--data-dir", data},
		{"revoke", "a/b/c", "--reason", "r", "--data-dir", data},
		{"revoke-key", "../x", "sha256:00", "--reason", "r", "--data-dir", data},
	} {
		err := cmdArchiveDevices(t.Context(), args, io.Discard, log)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "is not <site>/<name>") {
			t.Errorf("%v: %v, want exit 2 naming the form", args, err)
		}
	}
	if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was created: %v", err)
	}
}

// TestArchiveDevicesMissingDataDir: a valid device name with a data
// directory that is not there (a typo) is refused, exit 2 naming it, and
// nothing (no devices.json.lock) is created.
func TestArchiveDevicesMissingDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "TYPO")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, args := range [][]string{
		{"approve", "site1/dev1", "--key", "sha256:00", "--data-dir", data},
		{"revoke", "site1/dev1", "--reason", "r", "--data-dir", data},
		{"revoke-key", "site1/dev1", "sha256:00", "--reason", "r", "--data-dir", data},
		{"list", "--data-dir", data},
	} {
		err := cmdArchiveDevices(t.Context(), args, io.Discard, log)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "data dir") || !strings.Contains(err.Error(), data) {
			t.Errorf("%v: %v, want exit 2 naming the data dir", args, err)
		}
	}
	if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was created: %v", err)
	}
}
