package archive

import (
	"strings"
	"sync"
	"time"
)

// maxAlertKeys bounds the (device, reason) pairs the alert limiter
// remembers; past it, new pairs share one key per reason (device "*").
const maxAlertKeys = 4096

// alertLimiter lets one alert per device and reason (kind and checks)
// through per interval and counts the others.
type alertLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	seen     map[string]*alertSeen
}

type alertSeen struct {
	last       time.Time
	suppressed uint64
}

// allow reports whether al may be raised now; when it may, it returns the
// number of alerts of its key suppressed since the last one raised.
func (l *alertLimiter) allow(al Alert, now time.Time) (ok bool, suppressed uint64) {
	if l.interval < 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]*alertSeen{}
	}
	reason := al.Kind + "\x00" + strings.Join(al.Checks, ",")
	key := al.Device + "\x00" + reason
	s := l.seen[key]
	if s == nil && len(l.seen) >= maxAlertKeys {
		for k, v := range l.seen { // forget the quiet ones
			if v.suppressed == 0 && now.Sub(v.last) >= l.interval {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= maxAlertKeys {
			key = "*\x00" + reason
			s = l.seen[key]
		}
	}
	if s == nil {
		l.seen[key] = &alertSeen{last: now}
		return true, 0
	}
	if now.Sub(s.last) < l.interval {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}
