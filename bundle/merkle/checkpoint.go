package merkle

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// maxCheckpointSize bounds a checkpoint body.
const maxCheckpointSize = 1024

// Checkpoint is a C2SP tlog-checkpoint body: origin, tree size, root hash.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
}

// Origin returns the checkpoint origin of a device: "edgeseal/<site>/<device>".
// device is "<site>/<name>" as in records.
func Origin(device string) string { return "edgeseal/" + device }

// Marshal returns the body "origin\nsize\nbase64(root)\n".
func (c Checkpoint) Marshal() []byte {
	b := make([]byte, 0, len(c.Origin)+70)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Root[:])
	return append(b, '\n')
}

// ParseCheckpoint reads a checkpoint body strictly: exactly three lines,
// an origin of the form edgeseal/<site>/<name>, a decimal size without
// leading zeros, a padded base64 32-byte root. Extension lines are refused.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	return parseCheckpoint(b, true)
}

// ParseAnyCheckpoint is ParseCheckpoint for a checkpoint of any origin
// without spaces (an archive's log), not only a device's.
func ParseAnyCheckpoint(b []byte) (Checkpoint, error) {
	return parseCheckpoint(b, false)
}

// parseCheckpoint parses a checkpoint body; with device false any origin
// without whitespace is accepted (the archive's own log).
func parseCheckpoint(b []byte, device bool) (Checkpoint, error) {
	var c Checkpoint
	if len(b) > maxCheckpointSize {
		return c, wire.FormatErr("checkpoint", "%d bytes", len(b))
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return c, wire.FormatErr("checkpoint", "want 3 newline-terminated lines")
	}
	dev, ok := strings.CutPrefix(lines[0], "edgeseal/")
	if device && (!ok || wire.CheckDevice(dev) != nil) || lines[0] == "" || strings.ContainsAny(lines[0], " \t\r") {
		return c, wire.FormatErr("checkpoint", "origin %.80q is not edgeseal/<site>/<name>", lines[0])
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return c, wire.FormatErr("checkpoint", "size %.30q", lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return c, wire.FormatErr("checkpoint", "root %.60q", lines[2])
	}
	c.Origin, c.Size = lines[0], size
	copy(c.Root[:], root)
	return c, nil
}
