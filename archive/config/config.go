// Package config loads and validates the archive's YAML configuration, the
// file given to `edgeseal archive --config FILE`.
//
// Decoding is strict and the same as the agent's config: unknown keys,
// duplicate keys, merge keys, a second document and values of the wrong
// type are errors (*Error, naming the dotted key and, when known, the
// line). Keys left out take the defaults of Default. Booleans are true or
// false; durations are Go duration strings ("720h"). Relative paths (data_dir, key_file, mqtt.tls.*, mqtt.embedded.tls.*,
// objects.s3.credentials_file, objects.s3.tls.ca_file, enroll.ek_ca, api.tls_cert,
// api.tls_key, api.users_file, api.oidc.client_secret_file) are taken
// relative to the config file's directory by Load and kept as written by
// Parse.
//
// By default the archive runs an embedded MQTT broker on 127.0.0.1:1883
// and subscribes to it. Setting mqtt.broker (tcp:// or ssl://) uses an
// external broker instead and turns the embedded one off unless
// mqtt.embedded.enabled says true. Without mqtt.embedded.tls the embedded
// broker authenticates nobody and may listen on a loopback address only;
// with it, every client needs a certificate from its client CA and the
// packaged ACL applies (see archive/broker).
//
// Accepted bundles go to the filesystem object store under
// <data_dir>/objects unless objects.backend is s3 (see S3).
//
// testdata/archive.yaml is a complete, commented example.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/yamlconf"
)

// MaxFileSize is the largest config file accepted.
const MaxFileSize = 1 << 20

// Defaults.
const (
	DefaultDataDir   = "/var/lib/edgeseal-archive"
	DefaultName      = "edgeseal-archive"
	DefaultRetention = 10 * 365 * 24 * time.Hour
	DefaultListen    = "127.0.0.1:1883"
	DefaultClientID  = "edgeseal-archive"
	// DefaultGroup is no group: the archive subscribes directly, and no
	// other client can take a share of the bundles.
	DefaultGroup = ""
)

// Config is the archive's configuration.
type Config struct {
	// DataDir holds the log, the index, the object store, the quarantine
	// and devices.json.
	DataDir string `yaml:"data_dir"`
	// KeyFile is the archive's Ed25519 key (PKCS#8 PEM), created 0600 on
	// first start; default <data_dir>/archive.key.
	KeyFile string `yaml:"key_file"`
	// Key, when set, is the archive's key in a PKCS#11 token instead of
	// KeyFile (see key.go): "pkcs11:token=LABEL;object=LABEL".
	Key    string `yaml:"key"`
	PKCS11 PKCS11 `yaml:"pkcs11"`
	// ContentKeyWrap, when set, is an AES-256 key in the PKCS#11 token
	// of the pkcs11 section ("pkcs11:token=LABEL;object=LABEL") that
	// wraps the content private keys at rest (archive.ContentKeyWrapper).
	ContentKeyWrap string `yaml:"content_key_wrap"`
	// Name is the archive log's checkpoint origin and note key name.
	Name string `yaml:"name"`
	// Retention is what receipts promise (acceptance time + retention).
	Retention time.Duration `yaml:"retention"`
	// RetentionClasses map the retention classes of export records to
	// how long a bundle is kept (its longest class); with them,
	// RetentionDefaultClass is the class of records that name none, and
	// a bundle of another class is refused. Empty: every bundle is kept
	// Retention.
	RetentionClasses      []RetentionClass `yaml:"retention_classes"`
	RetentionDefaultClass string           `yaml:"retention_default_class"`
	// OperatorKeys are the operators' Ed25519 public key files (PEM,
	// `edgeseal archive operator keygen`) whose signed statements (legal
	// hold, purge) the archive accepts.
	OperatorKeys []string `yaml:"operator_keys"`
	MQTT         MQTT     `yaml:"mqtt"`
	// Objects chooses the write-once store of accepted bundles.
	Objects Objects `yaml:"objects"`
	// ArchiveLog chooses the engine of the archive log (archivelog.go).
	ArchiveLog ArchiveLog `yaml:"archive_log"`
	// ArchiveState chooses the store of the devices' chain state
	// (archivestate.go).
	ArchiveState ArchiveState `yaml:"archive_state"`
	// ArchiveIndex chooses the store of the export index
	// (archiveindex.go).
	ArchiveIndex ArchiveIndex `yaml:"archive_index"`
	Log          Log          `yaml:"log"`
	Metrics      Metrics      `yaml:"metrics"`
	// API is the read API for auditors (api.go).
	API    API    `yaml:"api"`
	Enroll Enroll `yaml:"enroll"`
	// Quarantine bounds the quarantine and rate-limits alerts.
	Quarantine Quarantine `yaml:"quarantine"`
}

// Enroll configures how enrollment requests are checked.
type Enroll struct {
	// EKCA is a PEM bundle of TPM manufacturer CA certificates. When
	// set, an enrollment request must carry an EK certificate that
	// chains to one of them (every certificate in the file is a trust
	// anchor); when empty, EK certificates are not required.
	EKCA string `yaml:"ek_ca"`
}

// Metrics configures the Prometheus /metrics endpoint; an empty Listen
// turns it off.
type Metrics struct {
	// Listen is HOST:PORT ("127.0.0.1:9465", or ":9465" for a scraper
	// on another host). The endpoint has no authentication: it shows
	// counts only, but firewall it to the scraper.
	Listen string `yaml:"listen"`
}

// MQTT configures how bundles arrive.
type MQTT struct {
	Embedded Embedded `yaml:"embedded"`
	// Broker is an external broker, "tcp://host:port" or "ssl://host:port";
	// empty: the embedded broker.
	Broker   string `yaml:"broker"`
	ClientID string `yaml:"client_id"` // stable per archive instance
	// Group, when set, subscribes through the shared subscription
	// $share/<group>/... so that several archives split the bundles.
	// Only with a broker that authorizes SUBSCRIBE (the embedded one with
	// TLS): with Mosquitto's acl_file any device can join the group and
	// make a share of the bundles disappear.
	Group string `yaml:"group"`
	TLS   TLS    `yaml:"tls"`
	// MaxLanes, MaxPending and MaxPendingBytes bound the subscriber's
	// per-device lanes (lanes.go).
	MaxLanes        int   `yaml:"max_lanes"`
	MaxPending      int   `yaml:"max_pending"`
	MaxPendingBytes int64 `yaml:"max_pending_bytes"`
}

// Embedded configures the embedded broker (mochi-mqtt).
type Embedded struct {
	Enabled *bool  `yaml:"enabled"` // default: on unless broker is set
	Listen  string `yaml:"listen"`
	// TLS makes the embedded broker's listener TLS only with client
	// certificates (ca_file: the CA of the clients' certificates;
	// cert_file, key_file: the broker's own), and turns on its
	// authentication and ACL. Required to listen on a non-loopback
	// address.
	TLS TLS `yaml:"tls"`
}

// EmbeddedOn reports whether the embedded broker runs.
func (m MQTT) EmbeddedOn() bool {
	if m.Embedded.Enabled != nil {
		return *m.Embedded.Enabled
	}
	return m.Broker == ""
}

// TLS configures the client side of ssl:// (server verification is
// always on).
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Log configures the structured log.
type Log struct {
	Format string `yaml:"format"` // "text" or "json"
	Level  string `yaml:"level"`  // slog syntax: debug, info, warn, error
}

// Error is a problem with one key of the config.
type Error struct {
	Key    string // dotted key; "" for the whole file
	Line   int    // 1-based line in the file; 0 when unknown
	Reason string
}

func (e *Error) Error() string {
	return "archive config: " + (&yamlconf.Error{Key: e.Key, Line: e.Line, Reason: e.Reason}).Error()
}

// Default returns the configuration for every key a file leaves out.
func Default() *Config {
	return &Config{
		DataDir: DefaultDataDir, Name: DefaultName, Retention: DefaultRetention,
		MQTT: MQTT{Embedded: Embedded{Listen: DefaultListen}, ClientID: DefaultClientID, Group: DefaultGroup,
			MaxLanes: DefaultMaxLanes, MaxPending: DefaultMaxPending, MaxPendingBytes: DefaultMaxPendingBytes},
		Objects:      Objects{Backend: BackendFS},
		ArchiveLog:   ArchiveLog{},
		ArchiveState: ArchiveState{Engine: StateEngineBadger, HoldWait: DefaultHoldWait, GapWait: DefaultGapWait},
		ArchiveIndex: ArchiveIndex{Engine: IndexEngineBadger},
		Log:          Log{Format: "text", Level: "info"},
		Quarantine:   defaultQuarantine(),
	}
}

// Load reads, decodes and validates the file at path, resolving relative
// paths against its directory.
func Load(path string) (*Config, error) {
	data, dir, err := fsutil.ReadConfig(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("archive config: %w", err)
	}
	return parse(data, dir)
}

// Parse decodes and validates YAML bytes; relative paths stay as written.
func Parse(data []byte) (*Config, error) { return parse(data, "") }

func parse(data []byte, base string) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Reason: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	c := Default()
	lines, yerr := yamlconf.Decode(data, c, nil)
	if yerr != nil {
		return nil, &Error{Key: yerr.Key, Line: yerr.Line, Reason: yerr.Reason}
	}
	if c.KeyFile == "" && c.DataDir != "" {
		c.KeyFile = filepath.Join(c.DataDir, "archive.key")
	}
	if base != "" {
		for i := range c.OperatorKeys {
			if !filepath.IsAbs(c.OperatorKeys[i]) {
				c.OperatorKeys[i] = filepath.Join(base, c.OperatorKeys[i])
			}
		}
		for _, p := range []*string{&c.DataDir, &c.KeyFile, &c.MQTT.TLS.CAFile, &c.MQTT.TLS.CertFile, &c.MQTT.TLS.KeyFile,
			&c.MQTT.Embedded.TLS.CAFile, &c.MQTT.Embedded.TLS.CertFile, &c.MQTT.Embedded.TLS.KeyFile,
			&c.Objects.S3.CredentialsFile, &c.Objects.S3.TLS.CAFile, &c.Enroll.EKCA, &c.PKCS11.PINFile, &c.ArchiveLog.MySQLDSNFile,
			&c.ArchiveState.MySQLDSNFile, &c.ArchiveIndex.MySQLDSNFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
	c.Objects.defaults(c.Retention)
	c.ArchiveState.defaults()
	c.ArchiveIndex.defaults()
	c.apiDefaults(base)
	if err := c.validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				if ce, ok := e.(*Error); ok {
					ce.Line = lines.Line(ce.Key)
				}
			}
		}
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Error{Key: key, Reason: fmt.Sprintf(format, a...)})
	}
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if c.Name == "" || strings.ContainsAny(c.Name, " \t\r\n+") || len(c.Name) > 128 {
		bad("name", "1 to 128 characters without spaces or '+'")
	}
	if c.Retention < 24*time.Hour {
		bad("retention", "%s is less than a day", c.Retention)
	}
	m := c.MQTT
	if m.EmbeddedOn() {
		et := m.Embedded.TLS
		if _, port, err := net.SplitHostPort(m.Embedded.Listen); err != nil || port == "" {
			bad("mqtt.embedded.listen", "%q is not host:port", m.Embedded.Listen)
		} else if et == (TLS{}) && !loopback(m.Embedded.Listen) {
			bad("mqtt.embedded.listen", "%q is not a loopback address: set mqtt.embedded.tls (client certificates, authentication and the ACL) to listen on the network", m.Embedded.Listen)
		}
		if et != (TLS{}) && (et.CAFile == "" || et.CertFile == "" || et.KeyFile == "") {
			bad("mqtt.embedded.tls", "ca_file (the clients' CA), cert_file and key_file go together")
		}
	} else if m.Embedded.TLS != (TLS{}) {
		bad("mqtt.embedded.tls", "set, but the embedded broker is off")
	}
	if m.Broker != "" {
		u, err := url.Parse(m.Broker)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl") || u.Host == "" || u.Path != "" {
			bad("mqtt.broker", "%q is not tcp://host:port or ssl://host:port", m.Broker)
		}
		if m.EmbeddedOn() {
			bad("mqtt.embedded.enabled", "the embedded broker and an external broker are exclusive")
		}
	}
	if m.Broker == "" && (m.TLS != TLS{}) {
		bad("mqtt.tls", "set only with an external ssl:// broker")
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		bad("mqtt.tls", "cert_file and key_file go together")
	}
	if m.ClientID == "" || len(m.ClientID) > 128 || strings.ContainsAny(m.ClientID, "/+#") {
		bad("mqtt.client_id", "1 to 128 characters, no '/', '+' or '#'")
	}
	if m.Group != "" && (len(m.Group) > 64 || strings.ContainsAny(m.Group, "/+# ")) {
		bad("mqtt.group", "a single topic level")
	}
	m.validateLanes(bad)
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
			bad("metrics.listen", "%q is not host:port", c.Metrics.Listen)
		}
	}
	c.Objects.validate(bad, c.Retention)
	c.ArchiveLog.validate(bad)
	c.ArchiveState.validate(bad)
	c.ArchiveIndex.validate(bad)
	c.validateAPI(bad)
	c.Quarantine.validate(bad)
	c.validateRetention(bad)
	c.validateKey(bad)
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// loopback reports whether listen's host is a loopback address or
// "localhost" (an empty host is every interface).
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// BrokerURL is where the archive's subscriber connects: the external
// broker, or the embedded one's listen address.
func (c *Config) BrokerURL() string {
	if c.MQTT.Broker != "" {
		return c.MQTT.Broker
	}
	host, port, _ := net.SplitHostPort(c.MQTT.Embedded.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

// Handler returns a slog handler writing to w in the configured format
// and level (nothing here sets a global logger).
func (l Log) Handler(w io.Writer) slog.Handler {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
