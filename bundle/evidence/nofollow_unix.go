//go:build unix

package evidence

import "syscall"

const noFollow = syscall.O_NOFOLLOW
