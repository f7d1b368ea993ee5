package jsontok

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// valid is Skip as a whole-document check: one value between white space.
func valid(b []byte, m Mode) bool {
	i := Space(b, 0)
	end, err := Skip(b, i, 10000, m)
	return err == nil && Space(b, end) == len(b)
}

func TestSkipMatchesEncodingJSON(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, s := range []string{
		`{"a":[1,-2.5e+3,"x\u00e9\n",true,false,null,{}]}`, ` [ 1 , { "a" : "b" } ] `, `""`, `0`, `-0.0e0`,
		`{"a":1,}`, `[1,]`, `{"a"}`, `{1:2}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"\x"`, `"\u12"`,
		"\"a\tb\"", "\"\xff\"", `"\ud800"`, `[`, `{`, ``, `"`, `"\`, deep, "[" + deep + "]", `{"a":1}}`, `[1 2]`,
	} {
		if got, want := valid([]byte(s), AllowBadUTF8), json.Valid([]byte(s)); got != want {
			t.Errorf("%.40q: Skip says %v, encoding/json %v", s, got, want)
		}
	}
	// Without AllowBadUTF8, bytes that are not UTF-8 are refused.
	if valid([]byte("\"\xff\""), 0) {
		t.Error("bad UTF-8 accepted")
	}
	_, err := Skip([]byte(`[[1]]`), 0, 1, 0)
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrDepth || e.Off != 1 {
		t.Errorf("depth: %v", err)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		m    Mode
		kind Kind
		off  int
	}{
		{`"ab`, 0, ErrEOF, 3},
		{"\"a\x01\"", 0, ErrControl, 2},
		{`"a\x"`, 0, ErrEscape, 3},
		{`"a\u12x4"`, 0, ErrUnicode, 6},
		{`"a\u12`, 0, ErrEOF, 6},
		{"\"a\xff\"", 0, ErrUTF8, 2},
		{`"\/"`, Canonical, ErrEscape, 2},
		{`"\u00e9"`, Canonical, ErrNotCanonical, 1},
		{`"\u20ac"`, Canonical, ErrNotCanonicalU, 1},
		{`"\u001F"`, Canonical, ErrNotCanonical, 1},
		{`"\u000a"`, Canonical, ErrNotCanonical, 1},
		{`"\u0041"`, Canonical, ErrNotCanonical, 1},
	} {
		_, _, err := String([]byte(c.in), 0, c.m)
		var e *Error
		if !errors.As(err, &e) || e.Kind != c.kind || e.Off != c.off {
			t.Errorf("%q: %v (%+v), want kind %d at %d", c.in, err, e, c.kind, c.off)
		}
	}
	for _, s := range []string{`"\u001f"`, `"\"\\\b\f\n\r\t"`, "\"\x7f\u00e9\""} {
		if _, _, err := String([]byte(s), 0, Canonical); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, c := range []struct {
		in      string
		end     int
		integer bool
		bad     bool
	}{
		{"0", 1, true, false}, {"-12,", 3, true, false}, {"1.5e-3]", 6, false, false}, {"01", 1, true, false},
		{"-", 1, false, true}, {"1.e3", 2, false, true}, {"2E+", 3, false, true},
	} {
		end, integer, err := Number([]byte(c.in), 0)
		if (err != nil) != c.bad || !c.bad && (end != c.end || integer != c.integer) {
			t.Errorf("%q: %d %v %v", c.in, end, integer, err)
		}
	}
}

func TestUnquote(t *testing.T) {
	for _, s := range []string{`"plain"`, `"a\"\\\/\b\f\n\r\tz"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\udc00x"`,
		`"\ud800\ud800\udc00"`, `"\ud800\u0041"`, "\"\xff\xc3(\"", `"\u0000"`} {
		got, err := Unquote(nil, []byte(s), false)
		var want string
		if jerr := json.Unmarshal([]byte(s), &want); jerr != nil || err != nil || string(got) != want {
			t.Errorf("%s: %q %v, encoding/json %q %v", s, got, err, want, jerr)
		}
		_, serr := Unquote(nil, []byte(s), true)
		lone := strings.Contains(s, `\ud800"`) || strings.Contains(s, `\udc00`) && !strings.Contains(s, `\ud800\udc00`) ||
			strings.Contains(s, `\ud800\ud800`) || strings.Contains(s, `\ud800\u0041`)
		if (serr != nil) != lone {
			t.Errorf("%s strict: %v", s, serr)
		}
	}
}

// FuzzTokens: Skip accepts what encoding/json accepts, and Unquote reads
// every string as encoding/json does.
func FuzzTokens(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e+3,"x\u00e9\n",true,false,null,{}]}`, `"\ud800\udc00\ud800"`, "\"\xff\"", `[01]`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := valid(b, AllowBadUTF8), json.Valid(b); got != want {
			t.Fatalf("%q: Skip says %v, encoding/json %v", b, got, want)
		}
		if strict := valid(b, 0); strict && !utf8.Valid(b) {
			t.Fatalf("%q: bad UTF-8 accepted", b)
		}
		if len(b) == 0 || b[0] != '"' {
			return
		}
		end, f, err := String(b, 0, AllowBadUTF8)
		if err != nil {
			return
		}
		tok := b[:end]
		var want string
		if err := json.Unmarshal(tok, &want); err != nil {
			t.Fatalf("%q: String accepts, encoding/json: %v", tok, err)
		}
		got, err := Unquote(nil, tok, false)
		if err != nil || string(got) != want {
			t.Fatalf("%q: Unquote %q %v, encoding/json %q", tok, got, err, want)
		}
		if f.Plain() && !bytes.Equal(tok[1:end-1], got) {
			t.Fatalf("%q: plain, but its value is %q", tok, got)
		}
		if _, _, err := String(b, 0, Canonical); err == nil {
			if got2, err := Unquote(nil, tok, true); err != nil || !bytes.Equal(got, got2) {
				t.Fatalf("%q: canonical string, strict Unquote %q %v", tok, got2, err)
			}
		}
	})
}

// End splits checked input where Skip does.
func TestEnd(t *testing.T) {
	for _, s := range []string{`{"a":[1,"x\"]",{"b":null}],"c":-1.5e3}`, `"a\\"`, `[[],{}]`, `true`, `-12`, `"\u00e9"`} {
		b := []byte(s + `,1`)
		want, err := Skip(b, 0, 10, 0)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got, err := End(b, 0); err != nil || got != want {
			t.Errorf("%s: End %d %v, Skip %d", s, got, err, want)
		}
	}
	for _, s := range []string{`"ab`, `{"a":[1}`, `[`, ``} {
		if _, err := End([]byte(s), 0); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}
