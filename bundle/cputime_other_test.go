//go:build !unix

package bundle_test

import "time"

func cpuTime() time.Duration { return 0 }
