package signed

import (
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/custody"

	"gopkg.in/yaml.v3"
)

// Alert is a governance alert raised when a policy is put in force: a
// change that the signatures allow but that an auditor wants to see.
type Alert struct {
	Kind    string // custody.AlertSchemaChanged, ... (the governance.alert kinds)
	Subject string // the schema id, the destination, the unknown key ids
	Detail  string
}

// Destinations are the destinations the workflows of d name.
func Destinations(d *Document) ([]string, error) {
	var l layout
	if err := yaml.Unmarshal([]byte(d.Policy), &l); err != nil {
		return nil, fmt.Errorf("policy: destinations: %w", err)
	}
	var out []string
	for _, w := range l.Workflows {
		for _, dst := range w.Destinations {
			if !slices.Contains(out, dst) {
				out = append(out, dst)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Alerts compares next, about to be put in force, with prev, the policy
// in force before (nil: none), and seen, the destinations of every earlier
// version (nil: next is the first). It raises custody.AlertSchemaChanged
// for a schema id whose files' bytes differ from prev's and
// custody.AlertDestinationNew for a destination not in seen.
func Alerts(prev *Document, seen map[string]bool, next *Document) ([]Alert, error) {
	var out []Alert
	if prev != nil {
		ch, err := Diff(prev, next)
		if err != nil {
			return nil, err
		}
		for _, c := range ch {
			if c.Kind == "schema" && c.Op == "changed" && slices.Contains(c.Fields, "content") {
				out = append(out, Alert{Kind: custody.AlertSchemaChanged, Subject: c.Name,
					Detail: fmt.Sprintf("schema %s changed bytes under the same name and version", c.Name)})
			}
		}
	}
	if seen == nil {
		return out, nil
	}
	ds, err := Destinations(next)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if !seen[d] {
			out = append(out, Alert{Kind: custody.AlertDestinationNew, Subject: d,
				Detail: fmt.Sprintf("destination %s is new: no earlier policy version had it", d)})
		}
	}
	return out, nil
}
