package packaging

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestN8NTemplate: integrations/n8n/edgeseal-export.json parses as an n8n
// workflow whose HTTP Request node is set up as docs/integrations.md
// says: POST to the agent's TLS URL /v1/exports, a Header Auth credential
// (never a token in the workflow), a JSON body whose id is the record's
// key, Retry On Fail, and refusals routed to an error output; and its
// connections name only nodes it has.
func TestN8NTemplate(t *testing.T) {
	raw, err := os.ReadFile("../integrations/n8n/edgeseal-export.json")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Nodes []struct {
			Name             string                     `json:"name"`
			Type             string                     `json:"type"`
			Parameters       map[string]any             `json:"parameters"`
			Credentials      map[string]json.RawMessage `json:"credentials"`
			RetryOnFail      bool                       `json:"retryOnFail"`
			MaxTries         int                        `json:"maxTries"`
			WaitBetweenTries int                        `json:"waitBetweenTries"`
			OnError          string                     `json:"onError"`
		} `json:"nodes"`
		Connections map[string]struct {
			Main [][]struct {
				Node string `json:"node"`
			} `json:"main"`
		} `json:"connections"`
	}
	if err := json.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("the template does not parse: %v", err)
	}
	if strings.Contains(string(raw), "Bearer ") && !strings.Contains(string(raw), "Bearer TOKEN") {
		t.Error("the template carries a token")
	}
	names := map[string]bool{}
	found := 0
	for _, n := range wf.Nodes {
		names[n.Name] = true
		if n.Type != "n8n-nodes-base.httpRequest" {
			continue
		}
		found++
		p := n.Parameters
		for k, want := range map[string]any{
			"method": "POST", "url": "https://127.0.0.1:8443/v1/exports",
			"authentication": "genericCredentialType", "genericAuthType": "httpHeaderAuth",
			"sendBody": true, "specifyBody": "json",
		} {
			if p[k] != want {
				t.Errorf("%s: %s = %v, want %v", n.Name, k, p[k], want)
			}
		}
		body, _ := p["jsonBody"].(string)
		for _, s := range []string{"id: $json.", "workflow:", "app: 'n8n'", "classification:", "destination:", "data: $json"} {
			if !strings.Contains(body, s) {
				t.Errorf("%s: jsonBody lacks %q: %s", n.Name, s, body)
			}
		}
		if _, ok := n.Credentials["httpHeaderAuth"]; !ok {
			t.Errorf("%s: no httpHeaderAuth credential", n.Name)
		}
		if !n.RetryOnFail || n.MaxTries < 2 || n.WaitBetweenTries < 1000 || n.OnError != "continueErrorOutput" {
			t.Errorf("%s: retryOnFail %v maxTries %d wait %d onError %q", n.Name, n.RetryOnFail, n.MaxTries, n.WaitBetweenTries, n.OnError)
		}
		if outs := wf.Connections[n.Name].Main; len(outs) != 2 || len(outs[1]) == 0 {
			t.Errorf("%s: want a success and an error output connected, got %d", n.Name, len(outs))
		}
	}
	if found != 1 {
		t.Fatalf("want one HTTP Request node, got %d", found)
	}
	for from, c := range wf.Connections {
		if !names[from] {
			t.Errorf("connection from unknown node %q", from)
		}
		for _, out := range c.Main {
			for _, to := range out {
				if !names[to.Node] {
					t.Errorf("connection to unknown node %q", to.Node)
				}
			}
		}
	}
}
