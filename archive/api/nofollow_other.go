//go:build !unix

package api

const oNoFollow = 0
