package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
)

// runCmd runs a command in this process and returns its output and exit
// code; an error follows the output as "error: ...".
func runCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, slog.New(slog.DiscardHandler))
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		out.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), code
}
