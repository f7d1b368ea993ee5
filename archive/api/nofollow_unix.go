//go:build unix

package api

import "syscall"

const oNoFollow = syscall.O_NOFOLLOW
