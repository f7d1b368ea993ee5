//go:build !unix

package evidence

const noFollow = 0
