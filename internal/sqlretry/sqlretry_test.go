package sqlretry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1213, Message: "Deadlock found"}, true},
		{&mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, true},
		{fmt.Errorf("write: %w", &mysql.MySQLError{Number: 1213}), true},
		{&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{errors.New("Deadlock found when trying to get lock"), false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestCeiling(t *testing.T) {
	for attempt, want := range map[int]time.Duration{
		0: time.Millisecond, 1: time.Millisecond, 2: 2 * time.Millisecond,
		5: 16 * time.Millisecond, 7: 64 * time.Millisecond, 8: 100 * time.Millisecond,
		Attempts: 100 * time.Millisecond, 1000: 100 * time.Millisecond,
	} {
		if got := Ceiling(attempt); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", attempt, got, want)
		}
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context = %v, want context.Canceled", err)
	}
	if err := Wait(context.Background(), 1); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}
