package sqlframes

import "time"

// SetClock sets the clock of s.
func SetClock(s *Store, now func() time.Time) { s.now = now }
