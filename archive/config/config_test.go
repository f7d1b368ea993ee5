package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExample(t *testing.T) {
	c, err := Load("testdata/archive.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.MQTT.EmbeddedOn() || c.BrokerURL() != "tcp://127.0.0.1:1883" || c.MQTT.Group != "archive" {
		t.Fatalf("%+v", c.MQTT)
	}
	if c.Metrics.Listen != "127.0.0.1:9465" {
		t.Fatalf("metrics %+v", c.Metrics)
	}
	if c.Retention != DefaultRetention || c.KeyFile != "/var/lib/edgeseal-archive/archive.key" {
		t.Fatalf("%+v", c)
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
		{"mqtt:\n  tls:\n    ca_file: x\n", "mqtt.tls"},
		{"log:\n  level: loud\n", "log.level"},
		{"metrics:\n  listen: nowhere\n", "metrics.listen"},
		{"a: 1\n---\nb: 2\n", ""},
		{"data_dir: [1]\n", ""},
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

func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile("testdata/archive.yaml")
	f.Add(ex)
	f.Add([]byte("mqtt:\n  broker: tcp://h:1\n"))
	f.Add([]byte("retention: 48h\nlog: {format: json}\n"))
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
		if c.BrokerURL() == "" || c.KeyFile == "" {
			t.Fatal("no broker url or key file")
		}
	})
}
