//go:build !unix

package witness

const noFollow = 0
