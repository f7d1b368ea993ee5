package config

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// minimal returns a valid config with the top-level keys in drop left out
// and extra appended.
func minimal(extra string, drop ...string) []byte {
	base := []struct{ key, line string }{
		{"site", "site: plant-1"},
		{"device", "device: gw-1"},
		{"policy", "policy: policy.yaml"},
	}
	var b strings.Builder
	for _, l := range base {
		if !slices.Contains(drop, l.key) {
			b.WriteString(l.line + "\n")
		}
	}
	b.WriteString(extra)
	return []byte(b.String())
}

// configErrors flattens err into its *Error values, failing the test on any
// other kind of error.
func configErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	walk(err)
	return out
}

// An unset api.max_inflight follows an api.max_body over its default; a
// set one under api.max_body is an error (TestParseErrors).
func TestMaxInflightFollowsMaxBody(t *testing.T) {
	c, err := Parse(minimal("api:\n  max_body: 100 MiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.MaxInflight != 100*MiB {
		t.Fatalf("api.max_inflight %d, want api.max_body %d", c.API.MaxInflight, 100*MiB)
	}
	if c, err = Parse(minimal("")); err != nil || c.API.MaxInflight != DefaultMaxInflight {
		t.Fatalf("default api.max_inflight %v %v, want %d", c, err, DefaultMaxInflight)
	}
}

func TestParseMinimalTakesDefaults(t *testing.T) {
	c, err := Parse(minimal(""))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Site != "plant-1" || c.Device != "gw-1" || c.DeviceID() != "plant-1/gw-1" {
		t.Errorf("site/device = %q %q %q", c.Site, c.Device, c.DeviceID())
	}
	if c.DataDir != d.DataDir || c.TPM != d.TPM || !slices.Equal(c.PCRs, d.PCRs) {
		t.Errorf("defaults not applied: %+v", c)
	}
	if want := filepath.Join(d.DataDir, "tpm"); c.TPMStateDir != want {
		t.Errorf("tpm_state_dir = %q, want %q", c.TPMStateDir, want)
	}
	if c.Seal != d.Seal || c.API != d.API || c.Spool != d.Spool || c.Log != d.Log {
		t.Errorf("sections differ from defaults:\n got %+v %+v %+v %+v\nwant %+v %+v %+v %+v",
			c.Seal, c.API, c.Spool, c.Log, d.Seal, d.API, d.Spool, d.Log)
	}
	if c.Policy != "policy.yaml" {
		t.Errorf("Parse changed a relative path: %q", c.Policy)
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID() != "plant-berlin/line3-gw" {
		t.Errorf("device id %q", c.DeviceID())
	}
	if c.API.SocketMode != 0o660 || c.API.MaxBody != 32*MiB || c.API.TCP != "127.0.0.1:8443" {
		t.Errorf("api = %+v", c.API)
	}
	if c.Seal.Interval != 10*time.Second || c.Seal.Every != 1000 {
		t.Errorf("seal = %+v", c.Seal)
	}
	if c.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("metrics = %+v", c.Metrics)
	}
	if c.Spool.Dir == "" || c.Log.Format != "json" || c.Log.SlogLevel().String() != "INFO" {
		t.Errorf("spool/log = %+v %+v", c.Spool, c.Log)
	}
	if len(c.Principals) != 3 {
		t.Fatalf("principals = %d", len(c.Principals))
	}
	ops := c.Principals[2]
	if !ops.Has(RoleOperator) || !ops.Has(RoleAuditor) || ops.Has(RoleExporter) {
		t.Errorf("site-ops roles = %v", ops.Roles)
	}
	// The example's documented tokens authenticate as the right principal.
	for token, name := range map[string]string{"n8n-prod-token": "n8n-prod", "auditor-token": "audit-team", "ops-token": "site-ops"} {
		p, ok := c.Principals.Authenticate(token)
		if !ok || p.Name != name {
			t.Errorf("Authenticate(%q) = %v, %v; want %s", token, p, ok, name)
		}
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	extra := "data_dir: data\ntpm: simulator:sim\ntpm_insecure_simulator: true\napi:\n  socket: run/agent.sock\nspool:\n  dir: spool\n  principal: p\n" +
		"principals:\n  - name: p\n    token_sha256: \"" + HashToken("t") + "\"\n    roles: [exporter]\n"
	if err := os.WriteFile(path, minimal(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		c.DataDir:     filepath.Join(dir, "data"),
		c.TPMStateDir: filepath.Join(dir, "data", "tpm"),
		c.TPM:         "simulator:" + filepath.Join(dir, "sim"),
		c.API.Socket:  filepath.Join(dir, "run", "agent.sock"),
		c.Spool.Dir:   filepath.Join(dir, "spool"),
		c.Policy:      filepath.Join(dir, "policy.yaml"),
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(*Config) bool
	}{
		{"octal string mode", "api:\n  socket_mode: \"0640\"\n", func(c *Config) bool { return c.API.SocketMode == 0o640 }},
		{"0o mode", "api:\n  socket_mode: 0o600\n", func(c *Config) bool { return c.API.SocketMode == 0o600 }},
		{"size in bytes", "api:\n  max_body: 4096\n", func(c *Config) bool { return c.API.MaxBody == 4096 }},
		{"size SI", "api:\n  max_body: 2MB\n", func(c *Config) bool { return c.API.MaxBody == 2_000_000 }},
		{"pcrs sorted", "pcrs: [7, 0, 23]\n", func(c *Config) bool { return slices.Equal(c.PCRs, []int{0, 7, 23}) }},
		{"null section keeps defaults", "seal:\n", func(c *Config) bool { return c.Seal == Default().Seal }},
		{"partial section keeps other defaults", "seal:\n  every: 5\n", func(c *Config) bool {
			return c.Seal.Every == 5 && c.Seal.Interval == DefaultSealInterval
		}},
		{"explicit tpm_state_dir", "tpm_state_dir: /srv/tpm\n", func(c *Config) bool { return c.TPMStateDir == "/srv/tpm" }},
		{"swtpm", "tpm: swtpm:localhost:2321\n", func(c *Config) bool { return c.TPM == "swtpm:localhost:2321" }},
		{"tcp only", "api:\n  socket: \"\"\n  tcp: \"[::1]:0\"\n  tls_cert: c.pem\n  tls_key: k.pem\n", func(c *Config) bool {
			return c.API.Socket == "" && c.API.TCP == "[::1]:0"
		}},
		{"spool poll ignored when off", "spool:\n  poll: 1ms\n", func(c *Config) bool { return c.Spool.Poll == time.Millisecond }},
		{"alias", "principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n    roles: &r [auditor]\n  - name: b\n    token_sha256: " + HashToken("b") + "\n    roles: *r\n",
			func(c *Config) bool { return c.Principals[1].Has(RoleAuditor) }},
		{"upper-case token hash", "principals:\n  - name: a\n    token_sha256: " + strings.ToUpper(HashToken("tok")) + "\n    roles: [exporter]\n",
			func(c *Config) bool { p, ok := c.Principals.Authenticate("tok"); return ok && p.Name == "a" }},
		{"log level with offset", "log:\n  level: warn+2\n", func(c *Config) bool { return c.Log.SlogLevel() == 6 }},
		{"bundle bound", "seal:\n  max_bundle: 8 MiB\n", func(c *Config) bool { return c.Seal.MaxBundle == 8*MiB && c.Seal.Every == DefaultSealEvery }},
		{"outbox quota default", "", func(c *Config) bool { return c.Sync.OutboxQuota == DefaultOutboxQuota }},
		{"outbox quota without a broker", "sync:\n  outbox_quota: 64 MiB\n", func(c *Config) bool { return c.Sync.OutboxQuota == 64*MiB }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(minimal(tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 65)
	p0 := "principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n    roles: [exporter]\n"
	tests := []struct {
		name   string
		doc    []byte
		key    string
		reason string
	}{
		// hardening: the simulator only when asked for, the socket group,
		// the in-flight bound
		{"simulator not asked for", minimal("tpm: simulator:sim\n"), "tpm", "tpm_insecure_simulator: true"},
		{"simulator asked off", minimal("tpm: simulator:sim\ntpm_insecure_simulator: false\n"), "tpm", "tpm_insecure_simulator: true"},
		{"socket group bad name", minimal("api:\n  socket_group: \"a b\"\n"), "api.socket_group", "want a group name"},
		{"socket group negative", minimal("api:\n  socket_group: \"-1\"\n"), "api.socket_group", "want a group name"},
		{"socket group without socket", minimal("api:\n  socket: \"\"\n  socket_group: edgeseal-api\n  tcp: 127.0.0.1:8443\n  tls_cert: c\n  tls_key: k\n"), "api.socket_group", "without api.socket"},
		{"max inflight under max body", minimal("api:\n  max_body: 1 MiB\n  max_inflight: 512 KiB\n"), "api.max_inflight", "at least api.max_body"},
		// decoding
		{"unknown key", minimal("sitee: x\n"), "sitee", "unknown key"},
		{"unknown nested key", minimal("seal:\n  everyy: 3\n"), "seal.everyy", "unknown key"},
		{"unknown principal key", minimal("principals:\n  - name: a\n    token: x\n"), "principals[0].token", "unknown key"},
		{"merge key", minimal("seal:\n  <<: {every: 3}\n"), "seal.<<", "unknown key"},
		{"duplicate key", minimal("device: gw-2\n"), "device", "duplicate key"},
		{"section not a mapping", minimal("seal: 5\n"), "seal", "mapping"},
		{"pcrs not a list", minimal("pcrs: 7\n"), "pcrs", "list"},
		{"pcr not a number", minimal("pcrs: [a]\n"), "pcrs[0]", "integer"},
		{"pcr float", minimal("pcrs: [1.5]\n"), "pcrs[0]", "integer"},
		{"null list item", minimal("principals: [~]\n"), "principals[0]", "empty"},
		{"every not a number", minimal("seal:\n  every: ten\n"), "seal.every", "integer"},
		{"interval without unit", minimal("seal:\n  interval: 10\n"), "seal.interval", "duration"},
		{"interval a list", minimal("seal:\n  interval: [1s]\n"), "seal.interval", "duration"},
		{"string is a list", minimal("data_dir: [a]\n"), "data_dir", "string"},
		{"roles not a list", minimal("principals:\n  - name: a\n    roles: exporter\n"), "principals[0].roles", "list"},
		{"mode not octal", minimal("api:\n  socket_mode: \"0999\"\n"), "api.socket_mode", "octal"},
		{"mode decimal 660", minimal("api:\n  socket_mode: 660\n"), "api.socket_mode", "octal"},
		{"mode too big", minimal("api:\n  socket_mode: 0o1777\n"), "api.socket_mode", "octal"},
		{"size unit", minimal("api:\n  max_body: 12 parsecs\n"), "api.max_body", "unit"},
		{"size negative", minimal("api:\n  max_body: -1\n"), "api.max_body", "size"},
		{"size overflow", minimal("api:\n  max_body: 99999999999 GiB\n"), "api.max_body", "range"},
		{"two documents", append(minimal(""), "---\nsite: x\n"...), "", "more than one"},
		{"top level list", []byte("- a\n"), "", "mapping"},
		{"syntax error", []byte("site: [\n"), "", ""},
		{"too large", bytes.Repeat([]byte("#"), MaxFileSize+1), "", "larger"},
		{"long unknown key", minimal(strings.Repeat("k", 1000) + ": 1\n"), strings.Repeat("k", 80) + "...", "unknown key"},
		{"key not a string", minimal("? [a]\n: b\n"), "", "plain strings"},

		// validation
		{"empty file", nil, "site", "required"},
		{"site missing", minimal("", "site"), "site", "required"},
		{"site slash", minimal("site: a/b\n", "site"), "site", "'/'"},
		{"site dotdot", minimal("site: ..\n", "site"), "site", "A-Za-z"},
		{"device missing", minimal("", "device"), "device", "required"},
		{"device slash", minimal("device: a/b\n", "device"), "device", "'/'"},
		{"device too long", minimal("device: "+long+"\n", "device"), "device", "64"},
		{"device space", minimal("device: \"gw 1\"\n", "device"), "device", "A-Za-z"},
		{"data_dir empty", minimal("data_dir: \"\"\n"), "data_dir", "required"},
		{"tpm_state_dir empty", minimal("data_dir: \"\"\n"), "tpm_state_dir", "required"},
		{"tpm unknown kind", minimal("tpm: usb:/dev/x\n"), "tpm", "want device"},
		{"tpm no arg", minimal("tpm: \"simulator:\"\n"), "tpm", "want device"},
		{"tpm relative device", minimal("tpm: device:dev/tpm0\n"), "tpm", "absolute"},
		{"swtpm no port", minimal("tpm: swtpm:localhost\n"), "tpm", "want device"},
		{"swtpm bad port", minimal("tpm: swtpm:localhost:99999\n"), "tpm", "port"},
		{"pcrs empty", minimal("pcrs: []\n"), "pcrs", "at least one"},
		{"pcr out of range", minimal("pcrs: [0, 24]\n"), "pcrs[1]", "out of range"},
		{"pcr negative", minimal("pcrs: [-1]\n"), "pcrs[0]", "out of range"},
		{"pcr twice", minimal("pcrs: [7, 7]\n"), "pcrs[1]", "twice"},
		{"seal every zero", minimal("seal:\n  every: 0\n"), "seal.every", "at least 1"},
		{"seal interval short", minimal("seal:\n  interval: 50ms\n"), "seal.interval", "at least"},
		{"seal interval negative", minimal("seal:\n  interval: -1s\n"), "seal.interval", "at least"},
		{"no listener", minimal("api:\n  socket: \"\"\n"), "api.socket", "no listener"},
		{"socket world writable", minimal("api:\n  socket_mode: 0666\n"), "api.socket_mode", "world-writable"},
		{"tcp not loopback", minimal("api:\n  tcp: 0.0.0.0:8443\n  tls_cert: c\n  tls_key: k\n"), "api.tcp", "loopback"},
		{"tcp hostname", minimal("api:\n  tcp: example.com:8443\n  tls_cert: c\n  tls_key: k\n"), "api.tcp", "loopback"},
		{"tcp no port", minimal("api:\n  tcp: 127.0.0.1\n  tls_cert: c\n  tls_key: k\n"), "api.tcp", "HOST:PORT"},
		{"tcp bad port", minimal("api:\n  tcp: 127.0.0.1:x\n  tls_cert: c\n  tls_key: k\n"), "api.tcp", "port"},
		{"tcp without cert", minimal("api:\n  tcp: 127.0.0.1:8443\n  tls_key: k\n"), "api.tls_cert", "required"},
		{"tcp without key", minimal("api:\n  tcp: 127.0.0.1:8443\n  tls_cert: c\n"), "api.tls_key", "required"},
		{"cert without tcp", minimal("api:\n  tls_cert: c\n"), "api.tls_cert", "only used"},
		{"key without tcp", minimal("api:\n  tls_key: k\n"), "api.tls_key", "only used"},
		{"metrics not loopback", minimal("metrics:\n  listen: 0.0.0.0:9464\n"), "metrics.listen", "loopback"},
		{"metrics no port", minimal("metrics:\n  listen: 127.0.0.1\n"), "metrics.listen", "HOST:PORT"},
		{"max_body zero", minimal("api:\n  max_body: 0\n"), "api.max_body", "must be"},
		{"max_body huge", minimal("api:\n  max_body: 5 GiB\n"), "api.max_body", "must be"},
		{"batch lines zero", minimal("api:\n  max_batch_lines: 0\n"), "api.max_batch_lines", "must be"},
		{"batch lines huge", minimal("api:\n  max_batch_lines: 2000000\n"), "api.max_batch_lines", "must be"},
		{"spool poll short", minimal("spool:\n  dir: /s\n  poll: 1ms\n"), "spool.poll", "at least"},
		{"spool mode world-writable", minimal("spool:\n  dir: /s\n  mode: 0777\n"), "spool.mode", "world-writable"},
		{"spool mode owner", minimal("spool:\n  dir: /s\n  mode: 0570\n"), "spool.mode", "owner"},
		{"spool mode not octal", minimal("spool:\n  dir: /s\n  mode: rwx\n"), "spool.mode", "octal"},
		{"spool group unknown", minimal("spool:\n  dir: /s\n  group: no-such-group-edgeseal\n"), "spool.group", "no such group"},
		{"spool group negative", minimal("spool:\n  dir: /s\n  group: \"-3\"\n"), "spool.group", "gid"},
		{"sync scheme", minimal("sync:\n  broker: http://x:1\n  archive_key: k.pub\n"), "sync.broker", "want tcp://"},
		{"sync no key", minimal("sync:\n  broker: tcp://127.0.0.1:1883\n"), "sync.archive_key", "required"},
		{"sync ssl no ca", minimal("sync:\n  broker: ssl://h:8883\n  archive_key: k.pub\n"), "sync.ca", "always verified"},
		{"sync cert alone", minimal("sync:\n  broker: tcp://h:1\n  archive_key: k.pub\n  cert: c.pem\n"), "sync.cert", "together"},
		{"sync plain tcp remote", minimal("sync:\n  broker: tcp://archive.example.net:1883\n  archive_key: k.pub\n"), "sync.broker", "sync.insecure_tcp"},
		{"sync plain tcp any", minimal("sync:\n  broker: tcp://0.0.0.0:1883\n  archive_key: k.pub\n"), "sync.broker", "not a loopback"},
		{"sync plain tcp lan", minimal("sync:\n  broker: tcp://192.0.2.7:1883\n  archive_key: k.pub\n"), "sync.broker", "unencrypted"},
		{"sync key without broker", minimal("sync:\n  archive_key: k.pub\n"), "sync.archive_key", "without sync.broker"},
		{"sync archive origin", minimal("sync:\n  broker: tcp://h:1\n  archive_key: k.pub\n  archive_origin: a+b\n"), "sync.archive_origin", "space, '+' or '/'"},
		{"outbox quota zero", minimal("sync:\n  outbox_quota: 0\n"), "sync.outbox_quota", "must be positive"},
		{"bundle bound too small", minimal("seal:\n  max_bundle: 1 KiB\n"), "seal.max_bundle", "at least 64 KiB"},
		{"spool principal missing", minimal("spool:\n  dir: /s\n"), "spool.principal", "must name a principal"},
		{"spool principal not exporter", minimal("spool:\n  dir: /s\n  principal: a\nprincipals:\n  - name: a\n    token_sha256: \"" +
			HashToken("x") + "\"\n    roles: [auditor]\n"), "spool.principal", "lacks the exporter role"},
		{"policy missing", minimal("", "policy"), "policy", "required"},
		{"principal no name", minimal("principals:\n  - token_sha256: " + HashToken("a") + "\n    roles: [auditor]\n"), "principals[0].name", "required"},
		{"principal bad name", minimal("principals:\n  - name: \"a b\"\n    token_sha256: " + HashToken("a") + "\n    roles: [auditor]\n"), "principals[0].name", "A-Za-z"},
		{"principal twice", minimal(p0 + "  - name: a\n    token_sha256: " + HashToken("b") + "\n    roles: [auditor]\n"), "principals[1].name", "twice"},
		{"token missing", minimal("principals:\n  - name: a\n    roles: [auditor]\n"), "principals[0].token_sha256", "64 hex"},
		{"token not hashed", minimal("principals:\n  - name: a\n    token_sha256: secret\n    roles: [auditor]\n"), "principals[0].token_sha256", "64 hex"},
		{"token short", minimal("principals:\n  - name: a\n    token_sha256: sha256:abcd\n    roles: [auditor]\n"), "principals[0].token_sha256", "64 hex"},
		{"token shared", minimal(p0 + "  - name: b\n    token_sha256: " + HashToken("a") + "\n    roles: [auditor]\n"), "principals[1].token_sha256", "same token"},
		{"no roles", minimal("principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n"), "principals[0].roles", "at least one"},
		{"unknown role", minimal("principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n    roles: [exporter, admin]\n"), "principals[0].roles[1]", "want exporter"},
		{"role twice", minimal("principals:\n  - name: a\n    token_sha256: " + HashToken("a") + "\n    roles: [auditor, auditor]\n"), "principals[0].roles[1]", "twice"},
		{"log format", minimal("log:\n  format: xml\n"), "log.format", "text or json"},
		{"log level", minimal("log:\n  level: loud\n"), "log.level", "debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.doc)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			errs := configErrors(t, err)
			for _, e := range errs {
				if e.Key == tt.key && strings.Contains(e.Reason, tt.reason) {
					if strings.Contains(err.Error(), "config: ") && (e.Key == "" || strings.Contains(err.Error(), e.Key+": ")) {
						return
					}
					t.Fatalf("message %q does not name key %q", err, e.Key)
				}
			}
			t.Fatalf("no error for key %q with %q in: %v", tt.key, tt.reason, err)
		})
	}
}

func TestAliasBomb(t *testing.T) {
	doc := minimal("principals:\n  - &p {name: a, roles: [" + strings.Repeat("auditor, ", 300) + "]}\n" + strings.Repeat("  - *p\n", 400))
	_, err := Parse(doc)
	errs := configErrors(t, err)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Key, "principals[") || !strings.Contains(errs[0].Reason, "more than") {
		t.Fatalf("err = %v, want the value budget exceeded under principals", err)
	}
}

func TestErrorLines(t *testing.T) {
	doc := minimal("seal:\n  every: 3\n  interval: 1ms\n")
	_, err := Parse(doc)
	errs := configErrors(t, err)
	if len(errs) != 1 || errs[0].Key != "seal.interval" {
		t.Fatalf("errs = %v", err)
	}
	lines := strings.Split(string(doc), "\n")
	if l := errs[0].Line; l < 1 || !strings.Contains(lines[l-1], "interval:") {
		t.Fatalf("line %d does not hold the key; file:\n%s", l, doc)
	}
	if !strings.Contains(err.Error(), "line ") {
		t.Errorf("message %q has no line", err)
	}

	// Every validation error is reported, not only the first.
	_, err = Parse([]byte("seal:\n  every: 0\nlog:\n  format: xml\n"))
	keys := map[string]bool{}
	for _, e := range configErrors(t, err) {
		keys[e.Key] = true
	}
	for _, k := range []string{"site", "device", "policy", "seal.every", "log.format"} {
		if !keys[k] {
			t.Errorf("missing error for %s in %v", k, err)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "17": 17, "17B": 17, "1 KiB": KiB, "3mib": 3 * MiB, "2 GiB": 2 * GiB,
		"1KB": 1000, "5 MB": 5_000_000, "1 gb": 1_000_000_000,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5 MiB", "-3", "1 TiB", "9223372036854775808", "9999999999999 GiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want error", in, got)
		}
	}
	for s, want := range map[ByteSize]string{0: "0 B", 100: "100 B", 1536: "1536 B", 2048: "2 KiB", 32 * MiB: "32 MiB", 3 * GiB: "3 GiB"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(s), got, want)
		}
		if back, err := ParseByteSize(s.String()); err != nil || back != s {
			t.Errorf("round trip of %d: %d, %v", int64(s), back, err)
		}
	}
}

func TestLogHandler(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l := Log{Format: format, Level: "warn"}
		h := l.Handler(&buf)
		if h.Enabled(t.Context(), -4) || !h.Enabled(t.Context(), 4) {
			t.Errorf("%s: level filter wrong", format)
		}
		logger := slog.New(h)
		logger.Warn("hello", "k", "v")
		isJSON := bytes.HasPrefix(buf.Bytes(), []byte("{"))
		if isJSON != (format == "json") || !bytes.Contains(buf.Bytes(), []byte("hello")) {
			t.Errorf("%s: wrote %q", format, buf.String())
		}
	}
}

// TestExampleDocumentsEveryKey keeps testdata/agent.yaml complete: every key
// of Config appears in it.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := prefix + n.Content[i].Value
				have[k] = true
				walk(n.Content[i+1], k+".")
			}
		case yaml.SequenceNode:
			for _, e := range n.Content {
				walk(e, prefix)
			}
		}
	}
	walk(doc.Content[0], "")
	var want func(typ reflect.Type, prefix string)
	want = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			k := prefix + f.Tag.Get("yaml")
			if !have[k] {
				t.Errorf("testdata/agent.yaml does not document %s", k)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				want(ft, k+".")
			}
		}
	}
	want(reflect.TypeFor[Config](), "")
}

func TestSealRotateEvery(t *testing.T) {
	if d := Default(); d.Seal.RotateEvery != 90*24*time.Hour {
		t.Fatalf("default rotate_every %s", d.Seal.RotateEvery)
	}
	for _, tc := range []struct {
		yaml string
		want time.Duration
		err  bool
	}{
		{"0s", 0, false}, {"720h", 720 * time.Hour, false}, {"30m", 0, true}, {"-1h", 0, true},
	} {
		c, err := Parse(minimal("seal:\n  rotate_every: " + tc.yaml + "\n"))
		if tc.err {
			var ce *Error
			if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "seal.rotate_every") {
				t.Errorf("rotate_every %s: %v, want an error naming seal.rotate_every", tc.yaml, err)
			}
			continue
		}
		if err != nil || c.Seal.RotateEvery != tc.want {
			t.Errorf("rotate_every %s: %v, %v", tc.yaml, c, err)
		}
	}
}

func TestRetentionLocalPayloads(t *testing.T) {
	if d := Default(); d.Retention.LocalPayloads != 0 {
		t.Fatalf("default local_payloads %s, want 0 (keep)", d.Retention.LocalPayloads)
	}
	for _, tc := range []struct {
		yaml string
		want time.Duration
		err  bool
	}{
		{"0s", 0, false}, {"720h", 720 * time.Hour, false}, {"2s", 2 * time.Second, false}, {"500ms", 0, true}, {"-1h", 0, true},
	} {
		c, err := Parse(minimal("retention:\n  local_payloads: " + tc.yaml + "\n"))
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "retention.local_payloads") {
				t.Errorf("local_payloads %s: %v, want an error naming retention.local_payloads", tc.yaml, err)
			}
			continue
		}
		if err != nil || c.Retention.LocalPayloads != tc.want {
			t.Errorf("local_payloads %s: %v, %v", tc.yaml, c, err)
		}
	}
}

// TestEncryptionKeys: a content key needs an archive key to verify it
// against (its own or sync.archive_key), and relative paths are resolved.
func TestEncryptionKeys(t *testing.T) {
	if _, err := Parse(minimal("encryption:\n  content_key: ck.json\n")); err == nil || !strings.Contains(err.Error(), "encryption.archive_key") {
		t.Fatalf("content key without an archive key: %v", err)
	}
	if _, err := Parse(minimal("encryption:\n  archive_key: a.pub\n")); err == nil || !strings.Contains(err.Error(), "without encryption.content_key") {
		t.Fatalf("archive key alone: %v", err)
	}
	c, err := Parse(minimal("encryption:\n  content_key: ck.json\n  archive_key: a.pub\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Encryption.ContentKey == "" || c.Encryption.ArchiveKey == "" {
		t.Fatalf("encryption %+v", c.Encryption)
	}
	if _, err := Parse(minimal("sync:\n  broker: tcp://127.0.0.1:1883\n  archive_key: k.pub\nencryption:\n  content_key: ck.json\n")); err != nil {
		t.Fatalf("content key verified against sync.archive_key: %v", err)
	}
}
