//go:build !unix

package tlog

import "os"

const noFollow = 0

// openNoFollow opens rel beneath dir; each component is checked not to
// be a symbolic link first.
func openNoFollow(dir, rel string) (*os.File, error) { return openPortable(dir, rel) }
