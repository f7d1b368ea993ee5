package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/agent/config"
)

// policy is the demo site's export policy: what each app may export.
const policy = `# Demo policy of plant-7: what the no-code apps may export, and to where.
version: 1
name: plant-7 demo exports
schemas:
  batch-report@2: schemas/batch-report-2.json
  sensor-series@1: schemas/sensor-series-1.json
  deviation@3: schemas/deviation-3.json
workflows:
  - name: nightly-batch-report
    media_types: [text/csv]
    classifications: [internal]
    retention: qa-10y
    destinations: [qa-share]
    principals: [n8n-line-3]
    max_size: 1048576
  - name: sensor-export
    schema: sensor-series@1
    classifications: [restricted, internal]
    retention: ops-2y
    destinations: [regulator]
    principals: [nodered-plc]
    max_size: 1048576
  - name: deviation-form
    schema: deviation@3
    classifications: [confidential]
    retention: qms-15y
    destinations: [qms]
    principals: [appsmith-qa]
    max_size: 65536
  - name: monthly-pdf
    media_types: [application/pdf]
    classifications: [internal]
    retention: reports-7y
    destinations: [board]
    principals: [rpa-desk]
    max_size: 8388608
`

// schemas are the JSON schemas the policy names.
var schemas = map[string]string{
	"batch-report-2.json": `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"string"}`,
	"sensor-series-1.json": `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
 "required":["sensor","unit","values"],"additionalProperties":false,
 "properties":{"sensor":{"type":"string","pattern":"^T-[0-9]+$"},"unit":{"enum":["C","K"]},
  "values":{"type":"array","items":{"type":"integer"},"minItems":1}}}`,
	"deviation-3.json": `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
 "required":["deviation","severity","signedBy"],"additionalProperties":false,
 "properties":{"deviation":{"type":"string"},"severity":{"enum":["minor","major","critical"]},
  "signedBy":{"type":"string","minLength":1}}}`,
}

// principals are the API callers of the demo, with their roles.
var principals = []struct{ name, roles string }{
	{"n8n-line-3", "exporter"},
	{"nodered-plc", "exporter"},
	{"appsmith-qa", "exporter"},
	{"rpa-desk", "exporter"},
	{"auditor", "auditor"},
	{"site-ops", "operator, auditor"},
}

// The demo device's site and name; its client certificate's common name
// is siteName/deviceName, as the embedded broker's ACL expects.
const (
	siteName   = "plant-7"
	deviceName = "appliance-1"
)

// writeSite writes the demo's policy, schemas and agent config under dir and
// returns the config path and each principal's bearer token. The agent
// syncs to broker (ssl://) with the CA and client certificate of tf.
func writeSite(dir, socket, broker, archiveKey string, tf *tlsFiles) (cfgPath string, tokens map[string]string, err error) {
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(filepath.Join(etc, "schemas"), 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "policy.yaml"), []byte(policy), 0o644); err != nil {
		return "", nil, err
	}
	for name, s := range schemas {
		if err := os.WriteFile(filepath.Join(etc, "schemas", name), []byte(s+"\n"), 0o644); err != nil {
			return "", nil, err
		}
	}
	if err := signPolicy(context.Background(), etc); err != nil {
		return "", nil, err
	}
	tokens = map[string]string{}
	var principalLines, tokenLines strings.Builder
	for _, p := range principals {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		tok := hex.EncodeToString(b[:])
		tokens[p.name] = tok
		fmt.Fprintf(&principalLines, "  - name: %s\n    token_sha256: %q\n    roles: [%s]\n", p.name, config.HashToken(tok), p.roles)
		fmt.Fprintf(&tokenLines, "%s=%s\n", p.name, tok)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf(`# Written by 'edgeseal demo'. The TPM is the in-process simulator: INSECURE.
site: %[6]s
device: %[7]s
data_dir: %[1]s
tpm: simulator:%[1]s/tpm
tpm_insecure_simulator: true
tpm_state_dir: %[1]s/tpm
seal:
  every: 100000
  interval: 1h
api:
  socket: %[2]s
  socket_mode: 0660
spool:
  dir: %[1]s/spool
  poll: 100ms
  principal: rpa-desk
sync:
  broker: %[4]s
  archive_key: %[5]s
  ca: %[8]s
  cert: %[9]s
  key: %[10]s
  max_message: 64 KiB
policy: policy.signed.json
policy_admins: policy-admins.json
principals:
%[3]slog:
  format: text
  level: warn
`, abs, socket, principalLines.String(), broker, archiveKey, siteName, deviceName, tf.CA, tf.ClientCert, tf.ClientKey)
	cfgPath = filepath.Join(etc, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.txt"), []byte(tokenLines.String()), 0o600); err != nil {
		return "", nil, err
	}
	return cfgPath, tokens, nil
}
