package main

import (
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// printKeyHistory prints the device's signing-key history as the verified
// bundles' key records tell it, and the key in force after the last one.
func printKeyHistory(w io.Writer, trust *trustfile.Trust, events []verify.KeyEvent, last *verify.State) {
	if len(events) == 0 && (last == nil || last.Keys == nil) {
		return
	}
	fmt.Fprintf(w, "signing keys of %s:\n", trust.DeviceName())
	for _, e := range events {
		if e.EarlierTPM {
			e.Reason += " (earlier TPM)"
		}
		switch e.Event {
		case "rotated":
			fmt.Fprintf(w, "  seq %-8d %s  rotated  %s (from %s, reason %q)\n", e.Seq, e.Time, e.KeyID, e.OldKeyID, e.Reason)
		case "revoked":
			fmt.Fprintf(w, "  seq %-8d %s  revoked  %s (reason %q)\n", e.Seq, e.Time, e.KeyID, e.Reason)
		case "recovered":
			fmt.Fprintf(w, "  seq %-8d %s  recovered %s (from %s, %s)\n", e.Seq, e.Time, e.KeyID, e.OldKeyID, e.Reason)
		default:
			fmt.Fprintf(w, "  seq %-8d %s  %-7s  %s%s\n", e.Seq, e.Time, e.Event, e.KeyID, e.Reason)
		}
	}
	if last != nil && last.Keys != nil {
		fmt.Fprintf(w, "  in force: %s\n", last.Keys.Current.KeyID)
	}
}
