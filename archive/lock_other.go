//go:build !unix

package archive

import "context"

// lockFile is a no-op where flock is not available: run one operator
// command at a time there.
func lockFile(ctx context.Context, path string) (func(), error) {
	return func() {}, ctx.Err()
}
