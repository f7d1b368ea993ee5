package main

import (
	"context"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/archive"
)

// revokeKey is `edgeseal archive devices revoke-key SITE/NAME KEYID
// --reason R`: bundles sealed by that signing key are refused from now
// on; the device and its other keys stay approved.
func revokeKey(ctx context.Context, d *archive.Devices, pos []string, reason, by string, stdout io.Writer) error {
	if len(pos) != 2 {
		return usageErr("archive devices revoke-key: want SITE/NAME KEYID")
	}
	if reason == "" {
		return usageErr("archive devices revoke-key: --reason is required")
	}
	info, err := d.RevokeKey(ctx, pos[0], pos[1], reason, by)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s key %s revoked (%d revoked keys); device %s\n", info.Name, pos[1], len(info.RevokedKeys), info.Status)
	return nil
}
