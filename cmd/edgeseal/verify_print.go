package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// printReport prints one bundle's checks: ok, FAIL, or skipped for a check
// that had nothing to compare (no previous state, a first seal).
func printReport(w io.Writer, path string, rep *verify.Report) {
	fmt.Fprintf(w, "%s\n", path)
	for _, c := range rep.Checks {
		mark := "ok     "
		switch {
		case !c.OK:
			mark = "FAIL   "
		case c.NotCompared:
			mark = "skipped"
		}
		if c.Detail != "" {
			fmt.Fprintf(w, "  %s %-22s %s\n", mark, c.Name, c.Detail)
		} else {
			fmt.Fprintf(w, "  %s %s\n", mark, c.Name)
		}
	}
	if rep.OK() {
		fmt.Fprintf(w, "  VERIFIED\n")
	} else {
		fmt.Fprintf(w, "  NOT VERIFIED\n")
	}
}

// printSummary prints the closing line: how many bundles, how many
// verified, which did not, and how they were verified.
func printSummary(w io.Writer, trust *trustfile.Trust, n int, failed []string, each bool) {
	mode := "as one chain of " + trust.DeviceName()
	if each {
		mode = "each on its own, device " + trust.DeviceName()
	}
	fmt.Fprintf(w, "summary: %d bundle(s) %s: %d verified, %d not verified", n, mode, n-len(failed), len(failed))
	if len(failed) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(failed, ", "))
	}
	fmt.Fprintln(w)
}
