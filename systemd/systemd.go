// Package systemd holds edgeseal's systemd unit files, embedded so that
// `edgeseal service install` writes exactly the units that are reviewed and
// tested here (see units_test.go for the systemd-analyze checks), and
// installs them (Install: the unit, the service account, the directories;
// Uninstall; Control starts, stops and reports a unit).
package systemd

import (
	_ "embed" // the unit files
	"fmt"
)

// AgentUnitName and ArchiveUnitName are the units' file names.
const (
	AgentUnitName   = "edgeseal-agent.service"
	ArchiveUnitName = "edgeseal-archive.service"
)

// AgentUnit is the text of edgeseal-agent.service.
//
//go:embed edgeseal-agent.service
var AgentUnit string

// ArchiveUnit is the text of edgeseal-archive.service.
//
//go:embed edgeseal-archive.service
var ArchiveUnit string

// UnknownKindError is returned by Unit for a kind other than agent or archive.
type UnknownKindError struct{ Kind string }

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("systemd: unknown service kind %q (want agent or archive)", e.Kind)
}

// Unit returns the unit file name and text for kind "agent" or "archive".
func Unit(kind string) (name, text string, err error) {
	switch kind {
	case "agent":
		return AgentUnitName, AgentUnit, nil
	case "archive":
		return ArchiveUnitName, ArchiveUnit, nil
	}
	return "", "", &UnknownKindError{Kind: kind}
}
