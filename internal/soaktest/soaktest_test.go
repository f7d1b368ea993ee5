package soaktest

import "testing"

func TestScale(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int
	}{{"", 1}, {"1", 1}, {"10", 10}, {"1000", 1000}} {
		t.Setenv(Env, c.env)
		if got := Scale(t); got != c.want {
			t.Errorf("%s=%q: Scale %d, want %d", Env, c.env, got, c.want)
		}
	}
}

// TestScaleRefuses: a bad value fails the test that asked (run in a
// subtest whose failure is caught by a fake testing.TB).
func TestScaleRefuses(t *testing.T) {
	for _, env := range []string{"0", "-3", "ten", "1001", "2.5"} {
		t.Setenv(Env, env)
		f := &fatalTB{TB: t}
		func() {
			defer func() { _ = recover() }()
			Scale(f)
		}()
		if !f.failed {
			t.Errorf("%s=%q: Scale did not fail the test", Env, env)
		}
	}
}

// fatalTB records Fatalf and stops the call, as testing does, by a panic
// the test recovers.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
