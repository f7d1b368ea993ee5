//go:build !unix

package daemonlog

import "os"

// journaldStream: there is no journald here.
func journaldStream(*os.File, string) bool { return false }
