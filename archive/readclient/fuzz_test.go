package readclient_test

import (
	"encoding/json"
	"testing"

	"github.com/edgeseal/edgeseal/archive/readclient"
)

// FuzzParsePage: a search answer never panics the parser, and what it
// accepts re-encodes to a page it accepts with the same items.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"items":[{"device":"site1/dev1","export":"E-1","seq":3,"type":"export","principal":"p","bundle":"sha256:00"}],"next":"c"}`))
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"items":null,"next":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, next, err := readclient.ParsePage(body)
		if err != nil {
			return
		}
		again, _ := json.Marshal(map[string]any{"items": items, "next": next})
		items2, next2, err := readclient.ParsePage(again)
		if err != nil || len(items2) != len(items) || next2 != next {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
