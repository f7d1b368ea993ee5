package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExample(t *testing.T) {
	c, err := Load("testdata/archive.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.MQTT.EmbeddedOn() || c.BrokerURL() != "tcp://127.0.0.1:1883" || c.MQTT.Group != "" {
		t.Fatalf("%+v", c.MQTT)
	}
	if c.Metrics.Listen != "127.0.0.1:9465" {
		t.Fatalf("metrics %+v", c.Metrics)
	}
	if c.Retention != DefaultRetention || c.KeyFile != "/var/lib/edgeseal-archive/archive.key" {
		t.Fatalf("%+v", c)
	}
}

// TestAPI: the read API listens off loopback only with TLS; its files are
// relative to the config file; the users file defaults to the data dir.
func TestAPI(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(p, []byte("data_dir: data\napi:\n  listen: 0.0.0.0:8443\n  tls_cert: api.crt\n  tls_key: api.key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.API; a.TLSCert != filepath.Join(dir, "api.crt") || a.TLSKey != filepath.Join(dir, "api.key") || a.UsersFile != filepath.Join(dir, "data", "users.json") || a.SessionTTL != DefaultSessionTTL || !a.TLS() {
		t.Fatalf("api %+v", a)
	}
	if c, err := Parse([]byte("api:\n  listen: 127.0.0.1:8443\n")); err != nil || c.API.TLS() {
		t.Fatalf("loopback without TLS: %v", err)
	}
	c, err = Parse([]byte(oidcYAML("roles: [{value: x, role: auditor}, {value: x, role: operator}, {value: y, role: auditor}]")))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.API.OIDC.RoleMap(); len(m["x"]) != 2 || m["y"][0] != "auditor" {
		t.Fatalf("role map %v", m)
	}
	// api.decrypt: off by default; rules by classification, "*" kept as is.
	if len(c.API.DecryptMap()) != 0 {
		t.Fatalf("decrypt rules by default: %v", c.API.DecryptMap())
	}
	dc, err := Parse([]byte("api:\n  listen: 127.0.0.1:8443\n  decrypt:\n    - {classification: confidential, roles: [decryptor]}\n    - {classification: '*', roles: [auditor, decryptor]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := dc.API.DecryptMap(); len(m) != 2 || m["confidential"][0] != "decryptor" || len(m["*"]) != 2 {
		t.Fatalf("decrypt map %v", m)
	}
}

func TestDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(p, []byte("data_dir: data\nmqtt:\n  broker: ssl://mq.example:8883\n  tls:\n    ca_file: ca.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "data") || c.KeyFile != filepath.Join(dir, "data", "archive.key") || c.MQTT.TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("paths %+v", c)
	}
	if c.MQTT.EmbeddedOn() || c.BrokerURL() != "ssl://mq.example:8883" {
		t.Fatalf("external broker: %+v", c.MQTT)
	}
	if c.ArchiveLog.Engine != "" || Default().ArchiveLog.Engine != "" {
		t.Fatalf("archive_log.engine %q, want unset by default (the archive decides by its data_dir)", c.ArchiveLog.Engine)
	}
	if err := os.WriteFile(p, []byte("archive_log:\n  engine: mysql\n  mysql_dsn_file: log.dsn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil || c.ArchiveLog.Engine != LogEngineMySQL || c.ArchiveLog.MySQLDSNFile != filepath.Join(dir, "log.dsn") {
		t.Fatalf("archive_log: %+v %v", c.ArchiveLog, err)
	}
	if c.ArchiveState.Engine != StateEngineBadger || Default().ArchiveState.Engine != StateEngineBadger {
		t.Fatalf("archive_state.engine %q, want badger by default", c.ArchiveState.Engine)
	}
	if err := os.WriteFile(p, []byte("archive_state:\n  engine: mysql\n  mysql_dsn_file: state.dsn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil || c.ArchiveState.Engine != StateEngineMySQL || c.ArchiveState.MySQLDSNFile != filepath.Join(dir, "state.dsn") {
		t.Fatalf("archive_state: %+v %v", c.ArchiveState, err)
	}
	if c.ArchiveIndex.Engine != IndexEngineBadger || Default().ArchiveIndex.Engine != IndexEngineBadger {
		t.Fatalf("archive_index.engine %q, want badger by default", c.ArchiveIndex.Engine)
	}
	if err := os.WriteFile(p, []byte("archive_index:\n  engine: mysql\n  mysql_dsn_file: index.dsn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil || c.ArchiveIndex.Engine != IndexEngineMySQL || c.ArchiveIndex.MySQLDSNFile != filepath.Join(dir, "index.dsn") {
		t.Fatalf("archive_index: %+v %v", c.ArchiveIndex, err)
	}
	if c.ArchiveState.Engine != StateEngineBadger {
		t.Fatalf("archive_index set archive_state.engine %q", c.ArchiveState.Engine)
	}
	if c, err = Parse([]byte("archive_index:\n  engine: badger\n")); err != nil || c.ArchiveIndex.Engine != IndexEngineBadger || c.ArchiveIndex.MySQLDSNFile != "" {
		t.Fatalf("archive_index engine badger: %+v %v", c, err)
	}
}

// TestEmbeddedTLS: with mqtt.embedded.tls the embedded broker may listen
// on every interface; its files are taken relative to the config file.
func TestEmbeddedTLS(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.yaml")
	yaml := "mqtt:\n  embedded:\n    listen: 0.0.0.0:8883\n    tls:\n      ca_file: ca.pem\n      cert_file: broker.pem\n      key_file: broker.key\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if et := c.MQTT.Embedded.TLS; et.CAFile != filepath.Join(dir, "ca.pem") || et.KeyFile != filepath.Join(dir, "broker.key") || !c.MQTT.EmbeddedOn() {
		t.Fatalf("%+v", c.MQTT)
	}
	_, err = Parse([]byte("mqtt:\n  embedded:\n    listen: 0.0.0.0:1883\n"))
	if err == nil || !strings.Contains(err.Error(), "mqtt.embedded.tls") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback listen without TLS: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{"unknown: 1\n", ""},
		{"data_dir: a\ndata_dir: b\n", ""},
		{"retention: 1h\n", "retention"},
		{"retention: soon\n", ""},
		{"name: 'a b'\n", "name"},
		{"mqtt:\n  broker: http://x\n", "mqtt.broker"},
		{"mqtt:\n  broker: tcp://x:1\n  embedded:\n    enabled: true\n", "mqtt.embedded.enabled"},
		{"mqtt:\n  embedded:\n    listen: nowhere\n", "mqtt.embedded.listen"},
		{"mqtt:\n  group: a/b\n", "mqtt.group"},
		{"mqtt:\n  embedded:\n    listen: 0.0.0.0:1883\n", "mqtt.embedded.listen"},
		{"mqtt:\n  embedded:\n    listen: :1883\n", "mqtt.embedded.listen"},
		{"mqtt:\n  embedded:\n    listen: 192.0.2.7:1883\n", "mqtt.embedded.listen"},
		{"mqtt:\n  embedded:\n    tls:\n      ca_file: ca.pem\n", "mqtt.embedded.tls"},
		{"mqtt:\n  broker: ssl://x:1\n  embedded:\n    tls:\n      ca_file: ca.pem\n      cert_file: c.pem\n      key_file: k.pem\n", "mqtt.embedded.tls"},
		{"mqtt:\n  tls:\n    ca_file: x\n", "mqtt.tls"},
		{"log:\n  level: loud\n", "log.level"},
		{"metrics:\n  listen: nowhere\n", "metrics.listen"},
		{"api:\n  listen: 0.0.0.0:8443\n", "api.listen"},
		{"api:\n  listen: :8443\n", "api.listen"},
		{"api:\n  listen: 192.0.2.7:8443\n", "api.listen"},
		{"api:\n  listen: nowhere\n", "api.listen"},
		{"api:\n  tls_cert: c.pem\n", "api.tls_cert"},
		{"api:\n  session_ttl: 1s\n", "api.session_ttl"},
		{"api:\n  session_ttl: 9000h\n", "api.session_ttl"},
		{"api:\n  oidc:\n    client_id: x\n", "api.oidc.issuer"},
		{oidcYAML("issuer: http://login.example.com/"), "api.oidc.issuer"},
		{oidcYAML("redirect_url: https://a.example/callback"), "api.oidc.redirect_url"},
		{oidcYAML("role_claim: ''"), "api.oidc.role_claim"},
		{oidcYAML("roles: [{value: x, role: root}]"), "api.oidc.roles"},
		{"api:\n  decrypt:\n    - classification: confidential\n      roles: [operator]\n", "api.decrypt"},
		{"api:\n  decrypt:\n    - classification: confidential\n", "api.decrypt"},
		{"api:\n  decrypt:\n    - roles: [decryptor]\n", "api.decrypt"},
		{"api:\n  decrypt:\n    - {classification: c, roles: [auditor]}\n    - {classification: c, roles: [decryptor]}\n", "api.decrypt"},
		{"api:\n  decrypt:\n    confidential: [decryptor]\n", "api.decrypt"},
		{"api:\n  oidc:\n    issuer: https://i.example/\n    client_id: c\n    client_secret_file: s\n    redirect_url: https://a.example:8443/v1/oidc/callback\n    role_claim: g\n    roles: [{value: x, role: auditor}]\n", "api.oidc.issuer"},
		{"a: 1\n---\nb: 2\n", ""},
		{"data_dir: [1]\n", ""},
		{"objects:\n  backend: tape\n", "objects.backend"},
		{"objects:\n  s3:\n    bucket: b\n", "objects.s3"},
		{"objects:\n  backend: s3\n  s3:\n    bucket: abc\n", "objects.s3.endpoint"},
		{s3yaml("endpoint: http://127.0.0.1:7070"), "objects.s3.endpoint"},
		{s3yaml("endpoint: https://s3.example/path"), "objects.s3.endpoint"},
		{s3yaml("endpoint: https://user:pw@s3.example"), "objects.s3.endpoint"},
		{s3yaml("endpoint: ftp://s3.example"), "objects.s3.endpoint"},
		{s3yaml("insecure_http: true"), "objects.s3.insecure_http"},
		{s3yaml("endpoint: http://127.0.0.1:7070\n    insecure_http: true\n    tls:\n      ca_file: ca.pem"), "objects.s3.tls"},
		{s3yaml("bucket: Archive"), "objects.s3.bucket"},
		{s3yaml("bucket: a..b"), "objects.s3.bucket"},
		{s3yaml("bucket: 10.0.0.1"), "objects.s3.bucket"},
		{s3yaml("region: 'us east'"), "objects.s3.region"},
		{s3yaml("prefix: edgeseal"), "objects.s3.prefix"},
		{s3yaml("prefix: /edgeseal/"), "objects.s3.prefix"},
		{s3yaml("prefix: a/../"), "objects.s3.prefix"},
		{s3yaml("retention_days: 30"), "objects.s3.retention_days"},
		{s3yaml("retention_days: 40000"), "objects.s3.retention_days"},
		{s3yaml("retention_days: -1"), "objects.s3.retention_days"},
		{s3yaml("virtual_hosted: true\n    bucket: a.b.c"), "objects.s3.virtual_hosted"},
		{s3yaml("secret: x"), ""},
		{"archive_log:\n  engine: sqlite\n", "archive_log.engine"},
		{"archive_log:\n  engine: mysql\n", "archive_log.mysql_dsn_file"},
		{"archive_log:\n  engine: posix\n  mysql_dsn_file: dsn\n", "archive_log.mysql_dsn_file"},
		{"archive_state:\n  engine: sqlite\n", "archive_state.engine"},
		{"archive_state:\n  engine: mysql\n", "archive_state.mysql_dsn_file"},
		{"archive_state:\n  engine: badger\n  mysql_dsn_file: dsn\n", "archive_state.mysql_dsn_file"},
		{"archive_index:\n  engine: sqlite\n", "archive_index.engine"},
		{"archive_index:\n  engine: journal\n", "archive_index.engine"},
		{"archive_index:\n  engine: mysql\n", "archive_index.mysql_dsn_file"},
		{"archive_index:\n  engine: badger\n  mysql_dsn_file: dsn\n", "archive_index.mysql_dsn_file"},
		{"archive_index:\n  dsn: x\n", ""},
	} {
		_, err := Parse([]byte(tc.yaml))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: %v, want *Error", tc.yaml, err)
			continue
		}
		if tc.key != "" && !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%q: %v, want key %s", tc.yaml, err, tc.key)
		}
	}
}

// oidcYAML is a valid api.oidc section with one key overridden.
func oidcYAML(line string) string {
	keys := map[string]string{"issuer": "https://login.example.com/", "client_id": "c", "client_secret_file": "s",
		"redirect_url": "https://a.example:8443/v1/oidc/callback", "role_claim": "groups", "roles": "[{value: x, role: auditor}]"}
	k, v, _ := strings.Cut(line, ": ")
	keys[k] = v
	out := "api:\n  listen: 127.0.0.1:8443\n  oidc:\n"
	for _, k := range []string{"issuer", "client_id", "client_secret_file", "redirect_url", "role_claim", "roles"} {
		out += "    " + k + ": " + keys[k] + "\n"
	}
	return out
}

// s3yaml is a valid S3 objects section with one more line (a key given
// twice is a decoding error, so overrides of endpoint and bucket come
// first and the base leaves them out when overridden).
func s3yaml(line string) string {
	base := "objects:\n  backend: s3\n  s3:\n    " + line + "\n"
	if !strings.HasPrefix(line, "endpoint:") {
		base += "    endpoint: https://s3.example.net\n"
	}
	if !strings.Contains(line, "bucket:") {
		base += "    bucket: edgeseal-archive\n"
	}
	return base
}

func TestObjectsS3(t *testing.T) {
	if c, err := Parse(nil); err != nil || c.Objects.Backend != BackendFS || c.Objects.S3 != (S3{}) {
		t.Fatalf("default objects %+v, %v", c.Objects, err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a.yaml")
	yaml := "retention: 240h\n" + s3yaml("prefix: edge/seal/") + "    credentials_file: s3.key\n    tls:\n      ca_file: /etc/ca.pem\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Objects.S3
	if c.Objects.Backend != BackendS3 || s.Region != DefaultS3Region || s.RetentionDays != 10 || s.Retention() != 240*time.Hour ||
		s.CredentialsFile != filepath.Join(dir, "s3.key") || s.TLS.CAFile != "/etc/ca.pem" || s.Prefix != "edge/seal/" {
		t.Fatalf("s3 %+v", s)
	}
	// The default lock covers the receipts' promise, rounded up to days.
	c, err = Parse([]byte("retention: 36h\n" + s3yaml("endpoint: http://127.0.0.1:7070\n    insecure_http: true")))
	if err != nil || c.Objects.S3.RetentionDays != 2 || c.Objects.S3.Retention() < c.Retention {
		t.Fatalf("retention days %+v, %v", c.Objects.S3, err)
	}
}

func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile("testdata/archive.yaml")
	f.Add(ex)
	f.Add([]byte("mqtt:\n  broker: tcp://h:1\n"))
	f.Add([]byte("retention: 48h\nlog: {format: json}\n"))
	f.Add([]byte(s3yaml("prefix: a/")))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if c.Objects.Backend == BackendS3 && c.Objects.S3.Retention() < c.Retention {
			t.Fatalf("objects locked %s, less than the retention %s", c.Objects.S3.Retention(), c.Retention)
		}
		if c.BrokerURL() == "" || c.KeyFile == "" {
			t.Fatal("no broker url or key file")
		}
	})
}

func TestPKCS11Key(t *testing.T) {
	c, err := Parse([]byte("key: \"pkcs11:token=t;object=o\"\npkcs11:\n  module: /usr/lib/softhsm/libsofthsm2.so\n  pin_file: pin\n"))
	if err != nil || !c.KeyInToken() || c.PKCS11.PINFile != "pin" {
		t.Fatalf("%+v %v", c, err)
	}
	for yaml, want := range map[string]string{
		"key: file.pem\npkcs11: {module: /m.so, pin_env: P}\n":                                 "key",
		"key: \"pkcs11:token=t;object=o\"\npkcs11: {pin_env: P}\n":                             "pkcs11.module",
		"key: \"pkcs11:token=t;object=o\"\npkcs11: {module: m.so, pin_env: P}\n":               "pkcs11.module",
		"key: \"pkcs11:token=t;object=o\"\npkcs11: {module: /m.so}\n":                          "pkcs11",
		"key: \"pkcs11:token=t;object=o\"\npkcs11: {module: /m.so, pin_env: P, pin_file: f}\n": "pkcs11",
		"key: \"pkcs11:token=t;object=o?pin-value=1\"\npkcs11: {module: /m.so, pin_env: P}\n":  "key",
		"pkcs11: {module: /m.so, pin_env: P}\n":                                                "pkcs11",
	} {
		_, err := Parse([]byte(yaml))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != want {
			t.Errorf("%q: %v, want an error about %s", yaml, err, want)
		}
	}
}

// TestQuarantine: the quarantine keys default to bounded values, are read,
// and out-of-range values are refused naming the key.
func TestQuarantine(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Quarantine != defaultQuarantine() || c.Quarantine.MaxEntries == 0 || c.Quarantine.AlertInterval != time.Minute {
		t.Fatalf("defaults %+v", c.Quarantine)
	}
	c, err = Parse([]byte("quarantine:\n  max_entries: 50\n  device_entries: 5\n  alert_interval: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Quarantine.MaxEntries != 50 || c.Quarantine.DeviceEntries != 5 || c.Quarantine.AlertInterval != 0 || c.Quarantine.MaxBytes != DefaultQuarantineBytes {
		t.Fatalf("%+v", c.Quarantine)
	}
	for _, bad := range []struct{ yaml, key string }{
		{"quarantine:\n  max_entries: 0\n", "quarantine.max_entries"},
		{"quarantine:\n  max_entries: 10\n  device_entries: 11\n", "quarantine.device_entries"},
		{"quarantine:\n  max_bytes: 1000\n", "quarantine.max_bytes"},
		{"quarantine:\n  device_bytes: 8589934592\n", "quarantine.device_bytes"},
		{"quarantine:\n  alert_interval: -1s\n", "quarantine.alert_interval"},
		{"quarantine:\n  max_files: 3\n", "max_files"},
	} {
		_, err := Parse([]byte(bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Fatalf("%q: %v, want an error naming %s", bad.yaml, err, bad.key)
		}
	}
}
