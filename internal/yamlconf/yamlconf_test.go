package yamlconf

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type upper string

type sample struct {
	Name    string        `yaml:"name"`
	Count   int64         `yaml:"count"`
	On      *bool         `yaml:"on"`
	Every   time.Duration `yaml:"every"`
	Mode    fs.FileMode   `yaml:"mode"`
	Tag     upper         `yaml:"tag"`
	Section struct {
		List []int `yaml:"list"`
	} `yaml:"section"`
}

var upperOpts = &Options{Scalars: map[reflect.Type]Scalar{
	reflect.TypeFor[upper](): {Want: "a word", Decode: func(n *yaml.Node, v reflect.Value) error {
		if strings.ContainsAny(n.Value, " \t") {
			return errors.New("one word only")
		}
		v.SetString(strings.ToUpper(n.Value))
		return nil
	}},
}}

func TestDecode(t *testing.T) {
	s := sample{Name: "default", Count: 7}
	lines, err := Decode([]byte("count: 9000000000\non: false\nevery: 1m\nmode: 0640\ntag: abc\nsection:\n  list: [1, 2]\n"), &s, upperOpts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "default" || s.Count != 9_000_000_000 || s.On == nil || *s.On || s.Every != time.Minute || s.Mode != 0o640 || s.Tag != "ABC" || len(s.Section.List) != 2 {
		t.Fatalf("%+v", s)
	}
	if lines.Line("section.list[1]") != 7 || lines.Line("count") != 1 || lines.Line("name") != 0 {
		t.Fatalf("lines %v", lines)
	}
	var empty sample
	if _, err := Decode([]byte("on: ~\n"), &empty, nil); err != nil || empty.On != nil {
		t.Fatalf("null pointer: %v %v", empty.On, err)
	}
	for doc, want := range map[string]Error{
		"name: a\nname: b\n":         {Key: "name", Line: 2, Reason: "duplicate key"},
		"section:\n  lists: []\n":    {Key: "section.lists", Line: 2, Reason: "unknown key"},
		"on: yes\n":                  {Key: "on", Line: 1, Reason: `want true or false, got "yes"`},
		"count: 1.5\n":               {Key: "count", Line: 1, Reason: `want an integer, got "1.5"`},
		"tag: [a]\n":                 {Key: "tag", Line: 1, Reason: "want a word"},
		"tag: two words\n":           {Key: "tag", Line: 1, Reason: "one word only"},
		"section:\n  list: [1, ~]\n": {Key: "section.list[1]", Line: 2, Reason: "empty list item"},
		"a: 1\n---\nb: 2\n":          {Line: 2, Reason: "more than one YAML document"},
	} {
		var s sample
		if _, err := Decode([]byte(doc), &s, upperOpts); err == nil || *err != want {
			t.Errorf("%q: %v, want %v", doc, err, &want)
		}
	}
}

// FuzzDecode: any bytes decode or fail with a reason, never a panic.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"count: 3\non: true\nevery: 1s\nmode: 0640\ntag: x\nsection:\n  list: [1, 2]\n",
		"a: &a [*a]\n", "---\n---\n", "section: {list: [~]}\n", "? [a]\n: b\n", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		if _, err := Decode(data, &s, upperOpts); err != nil && err.Reason == "" {
			t.Fatalf("error without a reason: %+v", err)
		}
	})
}
