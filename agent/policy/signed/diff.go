package signed

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/edgeseal/edgeseal/agent/policy"

	"gopkg.in/yaml.v3"
)

// Change is one difference between two policies.
type Change struct {
	Kind string // "workflow" or "schema"
	Op   string // "added", "removed", "changed"
	Name string // the workflow name or schema id
	// Fields are the workflow's fields that changed ("principals",
	// "max_size", ...), or for a schema "file" (it names another file)
	// and "content" (its files' bytes differ).
	Fields []string
}

func (c Change) String() string {
	s := fmt.Sprintf("%s %s %s", c.Kind, c.Name, c.Op)
	if len(c.Fields) > 0 {
		s += fmt.Sprintf(" %v", c.Fields)
	}
	return s
}

// layout is what Diff reads of a policy file (it was checked by Load).
type layout struct {
	Schemas   map[string]string `yaml:"schemas"`
	Workflows []policy.Workflow `yaml:"workflows"`
}

// Diff lists the workflows and schemas added, removed and changed from
// old to new, workflows first, each sorted by name.
func Diff(old, new *Document) ([]Change, error) {
	var a, b layout
	if err := yaml.Unmarshal([]byte(old.Policy), &a); err != nil {
		return nil, fmt.Errorf("policy: diff: %w", err)
	}
	if err := yaml.Unmarshal([]byte(new.Policy), &b); err != nil {
		return nil, fmt.Errorf("policy: diff: %w", err)
	}
	var out []Change
	wa, wb := byName(a.Workflows), byName(b.Workflows)
	for _, n := range union(wa, wb) {
		x, inA := wa[n]
		y, inB := wb[n]
		switch {
		case !inA:
			out = append(out, Change{Kind: "workflow", Op: "added", Name: n})
		case !inB:
			out = append(out, Change{Kind: "workflow", Op: "removed", Name: n})
		default:
			if f := workflowFields(x, y); len(f) > 0 {
				out = append(out, Change{Kind: "workflow", Op: "changed", Name: n, Fields: f})
			}
		}
	}
	for _, id := range union(a.Schemas, b.Schemas) {
		x, inA := a.Schemas[id]
		y, inB := b.Schemas[id]
		switch {
		case !inA:
			out = append(out, Change{Kind: "schema", Op: "added", Name: id})
		case !inB:
			out = append(out, Change{Kind: "schema", Op: "removed", Name: id})
		default:
			var f []string
			if x != y {
				f = append(f, "file")
			}
			if old.Files[x] != new.Files[y] {
				f = append(f, "content")
			}
			if len(f) > 0 {
				out = append(out, Change{Kind: "schema", Op: "changed", Name: id, Fields: f})
			}
		}
	}
	return out, nil
}

func byName(ws []policy.Workflow) map[string]policy.Workflow {
	m := make(map[string]policy.Workflow, len(ws))
	for _, w := range ws {
		m[w.Name] = w
	}
	return m
}

func union[V any](a, b map[string]V) []string {
	s := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			s = append(s, k)
		}
	}
	slices.Sort(s)
	return s
}

// workflowFields names the fields (by their YAML key) that differ.
func workflowFields(a, b policy.Workflow) []string {
	var f []string
	t := reflect.TypeOf(a)
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range t.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			f = append(f, t.Field(i).Tag.Get("yaml"))
		}
	}
	return f
}
