package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent"
)

// referenceDecodeExport is DecodeExport written with encoding/json's
// tokenizer: the oracle the hand-written scanner is held to.
func referenceDecodeExport(body []byte) (agent.IngestRequest, error) {
	req := agent.IngestRequest{MediaType: "application/json"}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return req, malformed("%s", jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return req, malformed("want a JSON object")
	}
	seen := map[string]bool{}
	haveData := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return req, malformed("%s", jsonErr(err))
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return req, malformed("%s", jsonErr(err))
		}
		if seen[key] {
			return req, badField(key, "given twice")
		}
		seen[key] = true
		_, dst := exportField(&req, key)
		switch {
		case key == "data":
			req.Data, haveData = []byte(raw), true
			continue
		case dst == nil:
			return req, badField(clipKey(key), "unknown field")
		}
		if len(raw) == 0 || raw[0] != '"' {
			return req, badField(key, "want a string")
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return req, badField(key, "want a string")
		}
	}
	if _, err := dec.Token(); err != nil {
		return req, malformed("%s", jsonErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, malformed("data after the JSON object")
	}
	return req, checkEnvelope(req, haveData)
}

// sameDecode fails t unless DecodeExport and the reference agree on b:
// both accept with the same request, or both refuse with the same code and
// field.
func sameDecode(t *testing.T, b []byte) {
	t.Helper()
	got, gerr := DecodeExport(b)
	want, werr := referenceDecodeExport(b)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: DecodeExport says %v, encoding/json says %v", b, gerr, werr)
	}
	if gerr != nil {
		var g, w *Error
		if !errors.As(gerr, &g) || !errors.As(werr, &w) {
			t.Fatalf("%q: errors %T %T", b, gerr, werr)
		}
		if g.Status != w.Status || g.Code != w.Code || g.Field != w.Field {
			t.Fatalf("%q: DecodeExport says %d %s %q (%s), encoding/json says %d %s %q (%s)",
				b, g.Status, g.Code, g.Field, g.Msg, w.Status, w.Code, w.Field, w.Msg)
		}
		return
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%q: data %q, encoding/json says %q", b, got.Data, want.Data)
	}
	got.Data, want.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: request %+v, encoding/json says %+v", b, got, want)
	}
}

func TestDecodeExportMatchesReference(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	tooDeep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, s := range []string{
		`{"workflow":"w","app":"a","data":{"x":1}}`,
		" \t\r\n{ \"data\" : [ 1 , 2.5e-3 , -0 , true , false , null , \"s\" , { } , [ ] ] } \n",
		`{"workflow":"w\u00e9\ud83d\ude00\n","data":1}`,
		`{"app":"\ud800","data":1}`, "{\"app\":\"a\xffb\",\"data\":1}", "{\"data\":\"\xc3\"}",
		`{"app":"a","data":1,}`, `{,"data":1}`, `{"data":1`, `{"data"}`, `{"data":}`, `{"data" 1}`,
		`{"data":01}`, `{"data":1.}`, `{"data":.5}`, `{"data":-}`, `{"data":1e}`, `{"data":1E+}`, `{"data":+1}`,
		`{"data":tru}`, `{"data":nul}`, `{"data":"a\x"}`, `{"data":"\u12"}`, "{\"data\":\"a\tb\"}",
		`{"data":[1,]}`, `{"data":[,1]}`, `{"data":{"a"}}`, `{"data":{"a":1,}}`, `{"data":{1:2}}`,
		`{"data":1}x`, `{"data":1}{}`, `{"data":1} 1`, `{"data":1}]`, "{\"data\":1} \x00}", "{\"data\":1}\x00", `[1]`, `"x"`, `1`, `tru`, `[`, `{`, ``, " ",
		`{"wörkflow":"w","data":1}`, `{"workflow":1,"data":1}`, `{"workflow":null,"data":1}`,
		`{"id":"a","id":"b","data":1}`, `{"data":1,"data":2}`, `{"x":[1,`, `{"x":1,"data":2}`,
		`{"media_type":"text/csv","data":1}`, `{"media_type":"application/ld+json; charset=utf-8","data":1}`,
		`{"d\u0061ta":{"k":"v"}}`, `{"workflow":"w"}`, `{"data":"` + strings.Repeat("x", 300) + `"}`,
		`{"data":` + deep + `}`, `{"data":` + tooDeep + `}`,
	} {
		sameDecode(t, []byte(s))
	}
}

// FuzzDecodeExportMatchesReference: the hand-written scanner accepts and
// refuses exactly what encoding/json does, with the same request.
func FuzzDecodeExportMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"workflow":"w","app":"a","data":{"x":1}}`,
		`{"id":"e-1","workflow":"w","app":"a","purpose":"p","schema":"s@1","classification":"c","retention":"r","destination":"d","media_type":"application/vnd.x+json","data":[1,2,{"a":null}]}`,
		`{"data":[1,-2.5E+3,"\u00e9\n",true,false,null,{}]}`, `{"app":"\ud800","data":1}`, `{"data":1}x`,
		"{\"data\":1} \x00}", "{\"data\":1}\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}
