package config

import (
	"strconv"
	"time"
)

// RetentionClass maps a retention class of export records to how long
// the archive keeps a bundle naming it (counted from its acceptance).
type RetentionClass struct {
	Name string        `yaml:"name"` // 1 to 64 of [A-Za-z0-9._-]
	Keep time.Duration `yaml:"keep"` // > 0, e.g. 61320h
}

// Classes returns the classes as a map (nil when none).
func (c *Config) Classes() map[string]time.Duration {
	if len(c.RetentionClasses) == 0 {
		return nil
	}
	m := make(map[string]time.Duration, len(c.RetentionClasses))
	for _, rc := range c.RetentionClasses {
		m[rc.Name] = rc.Keep
	}
	return m
}

func (c *Config) validateRetention(bad func(key, format string, a ...any)) {
	seen := map[string]bool{}
	for i, rc := range c.RetentionClasses {
		key := "retention_classes[" + strconv.Itoa(i) + "]"
		if !className(rc.Name) {
			bad(key+".name", "%.80q: 1 to 64 letters, digits, '.', '_' or '-'", rc.Name)
		}
		if seen[rc.Name] {
			bad(key+".name", "%q twice", rc.Name)
		}
		seen[rc.Name] = true
		if rc.Keep <= 0 {
			bad(key+".keep", "want a positive duration (61320h)")
		}
	}
	switch {
	case len(c.RetentionClasses) > 0 && !seen[c.RetentionDefaultClass]:
		bad("retention_default_class", "%q is not one of retention_classes", c.RetentionDefaultClass)
	case len(c.RetentionClasses) == 0 && c.RetentionDefaultClass != "":
		bad("retention_default_class", "set without retention_classes")
	}
	for i, k := range c.OperatorKeys {
		if k == "" {
			bad("operator_keys["+strconv.Itoa(i)+"]", "empty path")
		}
	}
}

func className(c string) bool {
	if len(c) == 0 || len(c) > 64 {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
