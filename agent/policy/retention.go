package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Permanent is the retention longer than any duration.
const Permanent = "permanent"

// Retention is a retention length: a duration, or permanent (longer than
// any duration).
type Retention struct {
	D         time.Duration
	Permanent bool
}

func (r Retention) String() string {
	if r.Permanent {
		return Permanent
	}
	return r.D.String()
}

// Shorter reports whether r is shorter than o.
func (r Retention) Shorter(o Retention) bool {
	switch {
	case r.Permanent:
		return false
	case o.Permanent:
		return true
	}
	return r.D < o.D
}

// ParseRetention reads "permanent" or a Go duration ("87600h"), > 0; a
// number with a "d" or "y" unit ("30d", "10y": 24h days, 365-day years)
// is accepted too.
func ParseRetention(s string) (Retention, error) {
	if s == Permanent {
		return Retention{Permanent: true}, nil
	}
	var d time.Duration
	var err error
	if n, unit, ok := cutUnit(s); ok {
		v, perr := strconv.ParseUint(n, 10, 32)
		if perr != nil || v == 0 || v > 10000 {
			return Retention{}, fmt.Errorf("policy: retention %.40q: want 1 to 10000 %s", s, unit)
		}
		d = time.Duration(v) * 24 * time.Hour
		if unit == "y" {
			d *= 365
		}
	} else if d, err = time.ParseDuration(s); err != nil {
		return Retention{}, fmt.Errorf("policy: retention %.40q: want a duration (87600h, 30d, 10y) or permanent", s)
	}
	if d <= 0 {
		return Retention{}, fmt.Errorf("policy: retention %.40q: want > 0", s)
	}
	return Retention{D: d}, nil
}

func cutUnit(s string) (n, unit string, ok bool) {
	for _, u := range []string{"d", "y"} {
		if n, ok := strings.CutSuffix(s, u); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return n, u, true
		}
	}
	return "", "", false
}

// retentionRules are the parsed min_retention and retention_classes.
type retentionRules struct {
	min     map[string]Retention // schema id ->
	classes map[string]Retention // class ->
}

func (f *file) retentionRules() (retentionRules, error) {
	rr := retentionRules{min: map[string]Retention{}, classes: map[string]Retention{}}
	for id, v := range f.MinRetention {
		if _, ok := f.Schemas[id]; !ok {
			return rr, &Error{Field: "min_retention." + id, Reason: "not a schema id of the policy"}
		}
		r, err := ParseRetention(v)
		if err != nil {
			return rr, &Error{Field: "min_retention." + id, Reason: "invalid", Err: err}
		}
		rr.min[id] = r
	}
	for c, v := range f.RetentionClasses {
		if !validName(c, 128, "") {
			return rr, &Error{Field: "retention_classes", Reason: fmt.Sprintf("class %.80q: want 1 to 128 of [A-Za-z0-9._-]", c)}
		}
		r, err := ParseRetention(v)
		if err != nil {
			return rr, &Error{Field: "retention_classes." + c, Reason: "invalid", Err: err}
		}
		rr.classes[c] = r
	}
	return rr, nil
}

// ShortRetention is a workflow whose retention class is shorter than the
// min_retention of its schema, or has no duration in retention_classes.
type ShortRetention struct {
	Workflow, Schema, Class string
	Min                     Retention
	ClassRetention          *Retention // nil: the class has no duration
}

func (s ShortRetention) String() string {
	if s.ClassRetention == nil {
		return fmt.Sprintf("workflow %s: retention class %s has no duration in retention_classes; schema %s needs at least %s", s.Workflow, s.Class, s.Schema, s.Min)
	}
	return fmt.Sprintf("workflow %s: retention class %s (%s) is shorter than schema %s's min_retention %s", s.Workflow, s.Class, *s.ClassRetention, s.Schema, s.Min)
}

// ShortRetentions lists the workflows whose retention class is shorter
// than their schema's min_retention (permanent is the longest), in
// workflow order. The policy is not refused for them: the agent raises a
// governance alert.
func (p *Policy) ShortRetentions() []ShortRetention {
	var out []ShortRetention
	for _, name := range p.order {
		w := p.workflows[name]
		m, ok := p.retention.min[w.Schema]
		if w.Schema == "" || !ok {
			continue
		}
		c, known := p.retention.classes[w.Retention]
		switch {
		case !known:
			out = append(out, ShortRetention{Workflow: name, Schema: w.Schema, Class: w.Retention, Min: m})
		case c.Shorter(m):
			out = append(out, ShortRetention{Workflow: name, Schema: w.Schema, Class: w.Retention, Min: m, ClassRetention: &c})
		}
	}
	return slices.Clip(out)
}
