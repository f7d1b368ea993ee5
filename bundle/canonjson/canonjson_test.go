package canonjson

import (
	"bytes"
	"testing"

	refjcs "github.com/gowebpki/jcs"
)

// Append agrees with the reference RFC 8785 implementation.
func TestCanonicalMatchesJCS(t *testing.T) {
	for _, in := range []string{
		`{"b":1,"a":{"z":[1,2,{"y":null,"x":true}],"é":"\u00e9","e":"\ud83d\ude00"},"€":false,"\u20ac2":-0}`,
		`{"s":"<&> \u2028 \u007f \" \\ \/ \b\f\n\r\t \u0001 \u001f"}`,
		`  [ 1 , -9007199254740991 , 9007199254740991 , "" , {} , [] ]  `,
		`{"\ud800\udc00":1,"\uffff":2,"a":3,"A":4,"":5}`,
		`"plain"`,
		`[0.0, -0.0, 1.0, 1e3, 1E+2, 2.5e1, 9007199254740991.0, -1e0]`,
	} {
		want, err := refjcs.Transform([]byte(in))
		if err != nil {
			t.Fatalf("jcs %s: %v", in, err)
		}
		got, err := Append(nil, []byte(in))
		if err != nil {
			t.Fatalf("canonical %s: %v", in, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\ngot  %s\nwant %s", in, got, want)
		}
		if _, err := check(got); err != nil {
			t.Fatalf("output %s not canonical: %v", got, err)
		}
	}
}

// Each refusal names what was wrong.
func TestCanonicalRefuses(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`, `{"a":1.5}`, `{"a":1e-3}`, `{"a":9007199254740992}`, `{"a":9007199254740992.0}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`,
		`{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1} x`, `{"a":`, `[1,]`, `{"a" 1}`, `nul`,
		"{\"a\":\"\x01\"}",
	} {
		if out, err := Append(nil, []byte(in)); err == nil {
			t.Errorf("%s: accepted as %s", in, out)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":{"z":[1,2],"é":"\u00e9"}}`))
	f.Add([]byte(`{"a":"\ud83d\ude00","\u20ac":-0,"x":[true,false,null]}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte("0.0"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Append(nil, in)
		ref, rerr := refjcs.Transform(in)
		if err == nil {
			if rerr != nil {
				t.Fatalf("accepted %q, reference refuses: %v", in, rerr)
			}
			if !bytes.Equal(got, ref) {
				t.Fatalf("%q:\ngot  %q\nwant %q", in, got, ref)
			}
			return
		}
		if rerr == nil {
			if _, cerr := check(ref); cerr == nil {
				t.Fatalf("refused %q (%v), which canonicalizes to %q", in, err, ref)
			}
		}
	})
}
