//go:build !unix

package main

import "os"

// journaldStream: there is no journald here.
func journaldStream(*os.File, string) bool { return false }
