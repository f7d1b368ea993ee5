package spool

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzDecodeMeta(f *testing.F) {
	for _, s := range []string{
		goodMeta,
		`{"id":"x","workflow":"w","app":"a","purpose":"p","schema":"s@1","classification":"c","retention":"r","destination":"d","media_type":"text/csv","principal":"spool"}`,
		`{"mediaType":"a/b","principal":"p"}`,
		`{"principal":"p","principal":"q"}`,
		`{"workflow":1}`, `[]`, `{`, `{"principal":"p"} x`, "\xff", `{"a\u0000":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMeta(data)
		if err != nil {
			var me *MetaError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is no *MetaError: %v", err, err)
			}
			return
		}
		if m.Principal == "" {
			t.Fatal("accepted a sidecar without principal")
		}
		// Whatever is accepted is an object of strings that
		// encoding/json reads the same way.
		var generic map[string]any
		if err := json.Unmarshal(data, &generic); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		for k, v := range generic {
			if _, ok := v.(string); !ok {
				t.Fatalf("accepted non-string %s", k)
			}
		}
		if generic["principal"] != m.Principal {
			t.Fatalf("principal %q, encoding/json reads %q", m.Principal, generic["principal"])
		}
	})
}
