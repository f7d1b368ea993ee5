// Package config loads and validates the agent's YAML configuration, the file
// given to `edgeseal agent --config FILE`.
//
// Decoding is strict: unknown keys, duplicate keys, a second YAML document and
// values of the wrong type are errors. Every problem is reported as an *Error
// naming the dotted key ("seal.interval", "principals[1].roles[0]") and, when
// known, the line. Keys left out take the defaults of [Default].
//
// Durations are Go duration strings ("10s", "1m30s"). Byte sizes are integers
// (bytes) or strings with a unit ("32 MiB", "512KiB", "1 GB"). File modes are
// octal ("0660", 0o660).
//
// Relative paths (data_dir, tpm_state_dir, the simulator directory of a
// "simulator:DIR" tpm spec, api.socket, api.tls_cert, api.tls_key, spool.dir,
// policy) are taken relative to the config file's directory by [Load], and
// left as written by [Parse].
//
// agent/config/testdata/agent.yaml is a complete, commented example.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/yamlconf"
)

// MaxFileSize is the largest config file Load and Parse accept.
const MaxFileSize = 1 << 20

// Defaults.
const (
	DefaultDataDir       = "/var/lib/edgeseal"
	DefaultTPM           = "device:/dev/tpmrm0"
	DefaultSealEvery     = 1000
	DefaultSealInterval  = 10 * time.Second
	DefaultSocket        = "/run/edgeseal/agent.sock"
	DefaultSocketMode    = fs.FileMode(0o660)
	DefaultMaxBody       = 32 * MiB
	DefaultMaxBatchLines = 10000
	DefaultSpoolPoll     = 2 * time.Second
	DefaultLogFormat     = "text"
	DefaultLogLevel      = "info"
	DefaultOutboxQuota   = 1 * GiB
	DefaultSealMaxBundle = 4 * MiB
	DefaultRotateEvery   = 90 * 24 * time.Hour
)

// DefaultPCRs is the PCR selection the signing key is bound to by default.
var DefaultPCRs = []int{0, 2, 4, 7}

// Config is the agent's configuration.
type Config struct {
	// Site and Device name this agent; records carry "<site>/<device>".
	// Both are required, 1 to 64 of [A-Za-z0-9._-], not "." or "..".
	Site   string `yaml:"site"`
	Device string `yaml:"device"`
	// DataDir holds the journal and payloads.
	DataDir string `yaml:"data_dir"`
	// TPM is a spec string: "device:/dev/tpmrm0", "swtpm:HOST:PORT" or
	// "simulator:DIR" (the in-process simulator: insecure, for tests and demos).
	TPM string `yaml:"tpm"`
	// TPMInsecureSimulator must be true for a "simulator:DIR" TPM: the
	// in-process simulator keeps its secrets in plain files, so a build
	// with it linked in uses it only when asked for by name.
	TPMInsecureSimulator bool `yaml:"tpm_insecure_simulator"`
	// TPMStateDir keeps key blobs and handles; default <data_dir>/tpm.
	TPMStateDir string `yaml:"tpm_state_dir"`
	// PCRs the signing key and data key are bound to (0..23, no repeats);
	// kept sorted.
	PCRs   []int  `yaml:"pcrs"`
	Seal   Seal   `yaml:"seal"`
	API    API    `yaml:"api"`
	Spool  Spool  `yaml:"spool"`
	Sync   Sync   `yaml:"sync"`
	Policy string `yaml:"policy"` // path of the policy file; required
	// PolicyAdmins is the path of the policy admin set (docs/formats.md,
	// "Signed policy"); when set, Policy must be a signed policy.
	PolicyAdmins string     `yaml:"policy_admins"`
	Principals   Principals `yaml:"principals"`
	Log          Log        `yaml:"log"`
	Metrics      Metrics    `yaml:"metrics"`
	Retention    Retention  `yaml:"retention"`
	Encryption   Encryption `yaml:"encryption"`
}

// Encryption is the end-to-end encryption of payloads to the archive's
// content key (docs/formats.md, "Payload encryption"). An empty
// ContentKey sends payloads in plaintext.
type Encryption struct {
	// ContentKey is the archive's content key announcement (the file
	// `edgeseal archive content-key new|rotate` writes), signed by the
	// archive key. The agent refuses to start when it does not verify:
	// it never falls back to plaintext. Which exports are encrypted is
	// the policy's (encrypt, plaintext_classifications; default all).
	ContentKey string `yaml:"content_key"`
	// ArchiveKey is the archive's Ed25519 public key the announcement is
	// verified against; default sync.archive_key (with the archive key
	// rotations the agent learned since).
	ArchiveKey string `yaml:"archive_key"`
}

// Retention is the device's local retention.
type Retention struct {
	// LocalPayloads: the payload bytes of an export leave the journal
	// (and the spool's done/ folder) once the export is this old and the
	// archive receipted the bundle that sealed it; each purge is journaled
	// as a retention.purge record. 0 (the default) keeps them.
	LocalPayloads time.Duration `yaml:"local_payloads"`
}

// Metrics configures the Prometheus /metrics endpoint; an empty Listen
// turns it off.
type Metrics struct {
	// Listen is a loopback HOST:PORT ("127.0.0.1:9464"), like api.tcp:
	// the endpoint has no authentication, so a scraper on another host
	// goes through a local proxy or exporter.
	Listen string `yaml:"listen"`
}

// Seal says when the journal is sealed: after Every records or Interval,
// whichever comes first.
type Seal struct {
	Every    int           `yaml:"every"`    // >= 1
	Interval time.Duration `yaml:"interval"` // >= 100ms
	// MaxBundle bounds the records and payloads of one bundle; a backlog
	// is sealed in several bundles (>= 64 KiB; one record larger than
	// this still gets a bundle of its own).
	MaxBundle ByteSize `yaml:"max_bundle"`
	// RotateEvery rotates the signing key once the key in force is older
	// than this (default 2160h, 90 days; 0 turns scheduled rotation off;
	// else at least 1h).
	RotateEvery time.Duration `yaml:"rotate_every"`
}

// API configures the local ingest API. At least one of Socket and TCP is set.
type API struct {
	Socket     string      `yaml:"socket"`      // unix socket path; "" for none
	SocketMode fs.FileMode `yaml:"socket_mode"` // permission bits, not world-writable
	// SocketGroup, when set, is the group (name or numeric id) the socket
	// is given: the API's clients. Keep it apart from the group that may
	// read /etc/edgeseal (the daemon's own group): an API client then
	// cannot read the device's keys. The agent must be a member of it.
	// Unset leaves the socket in the agent's primary group.
	SocketGroup string `yaml:"socket_group"`
	// TCP is an optional loopback listen address ("127.0.0.1:8443",
	// "[::1]:8443", "localhost:8443"); it needs TLSCert and TLSKey.
	TCP           string   `yaml:"tcp"`
	TLSCert       string   `yaml:"tls_cert"`
	TLSKey        string   `yaml:"tls_key"`
	MaxBody       ByteSize `yaml:"max_body"`        // largest request body
	MaxBatchLines int      `yaml:"max_batch_lines"` // most lines in one batch
	// MaxInflight bounds the bytes of single-export request bodies the
	// API holds at once (>= MaxBody); a request that would go over it is
	// answered 503 with Retry-After instead of growing the heap. Default
	// 64 MiB, or MaxBody when that is larger and max_inflight is unset.
	MaxInflight ByteSize `yaml:"max_inflight"`
}

// Spool configures the spool folder; an empty Dir turns it off.
type Spool struct {
	Dir  string        `yaml:"dir"`
	Poll time.Duration `yaml:"poll"` // >= 10ms
	// Principal names the principal (an exporter) that files dropped in
	// the spool folder are ingested as: whoever can write the folder acts
	// as it. Required when Dir is set.
	Principal string `yaml:"principal"`
	// Mode, when set, is applied to the spool folder at start:
	// permission bits, the owner (the agent) rwx, never world-writable.
	// Unset leaves an existing folder as it is (a new one is 0750).
	Mode fs.FileMode `yaml:"mode"`
	// Group, when set, is the group (name or numeric id) the spool folder
	// is given at start (with the setgid bit when Mode is set), so the
	// tools of that group can drop files: e.g. mode 0770, group
	// edgeseal-spool.
	Group string `yaml:"group"`
}

// Sync configures delivery of sealed bundles to the archive over MQTT. An
// empty Broker turns it off: bundles then wait in the outbox (for removable
// media, or until a broker is configured).
type Sync struct {
	Broker string `yaml:"broker"` // tcp://HOST:PORT or ssl://HOST:PORT
	// ArchiveKey is the archive's Ed25519 public key (PEM, PKIX), written
	// by `edgeseal archive` as KEYFILE.pub. Receipts must verify against
	// it; a PUBACK is not delivery. Required with Broker.
	ArchiveKey string `yaml:"archive_key"`
	// ArchiveOrigin is the archive's name (its log origin, the archive
	// config's name): announcements of a new archive key must name it.
	// Default "edgeseal-archive".
	ArchiveOrigin string `yaml:"archive_origin"`
	// CA verifies the broker (ssl:// only; required there); Cert and Key
	// are the device's client certificate, both or neither.
	CA             string   `yaml:"ca"`
	Cert           string   `yaml:"cert"`
	Key            string   `yaml:"key"`
	MaxMessage     ByteSize `yaml:"max_message"`      // bytes per MQTT message; default 256 KiB
	Window         int      `yaml:"window"`           // bundles in flight; default 8 (sync.DefaultWindow)
	BytesPerSecond ByteSize `yaml:"bytes_per_second"` // 0: unlimited
	// OutboxQuota is the outbox size above which the agent raises its
	// over-quota alarm (one error line, /v1/status outboxOverQuota);
	// exports are still journaled and sealed. Default 1 GiB. It applies
	// without a broker too (bundles waiting for removable media).
	OutboxQuota ByteSize `yaml:"outbox_quota"`
	// RetryHeld is how long a bundle the archive rejected waits before it
	// is sent once more (the device may have been approved meanwhile);
	// the wait doubles up to 8 times while nothing is delivered. Default
	// 5m; "-1s" (negative) never retries until the agent restarts.
	RetryHeld time.Duration `yaml:"retry_held"`
	// ResendAfter sends a bundle again when no receipt came back for it
	// in this time (the broker can lose a QoS 1 message, e.g. a shared
	// subscription's while the archive reconnects); default 2m, >= 1s.
	ResendAfter time.Duration `yaml:"resend_after"`
	// InsecureTCP allows a plain tcp:// broker that is not on a loopback
	// address (bundles, receipts and the device's identity then travel
	// unencrypted and unauthenticated). Without it such a broker is
	// refused; use ssl:// with ca, cert and key instead.
	InsecureTCP bool `yaml:"insecure_tcp"`
}

// Log configures the agent's structured log.
type Log struct {
	Format string `yaml:"format"` // "text" or "json"
	Level  string `yaml:"level"`  // debug, info, warn, error (slog syntax, e.g. "warn+2")
}

// Error is a problem with one key of the config.
type Error struct {
	Key    string // dotted key, e.g. "seal.interval" or "principals[0].roles[1]"; "" for the whole file
	Line   int    // 1-based line in the file; 0 when unknown
	Reason string
}

func (e *Error) Error() string {
	return "config: " + (&yamlconf.Error{Key: e.Key, Line: e.Line, Reason: e.Reason}).Error()
}

// Default returns the configuration used for every key a file leaves out.
// Site, Device and Policy have no default. TPMStateDir stays empty here and
// becomes <data_dir>/tpm once the file is read.
func Default() *Config {
	return &Config{
		DataDir: DefaultDataDir,
		TPM:     DefaultTPM,
		PCRs:    append([]int(nil), DefaultPCRs...),
		Seal:    Seal{Every: DefaultSealEvery, Interval: DefaultSealInterval, MaxBundle: DefaultSealMaxBundle, RotateEvery: DefaultRotateEvery},
		API: API{
			Socket:        DefaultSocket,
			SocketMode:    DefaultSocketMode,
			MaxBody:       DefaultMaxBody,
			MaxBatchLines: DefaultMaxBatchLines,
			MaxInflight:   DefaultMaxInflight,
		},
		Spool: Spool{Poll: DefaultSpoolPoll},
		Sync:  Sync{OutboxQuota: DefaultOutboxQuota},
		Log:   Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
	}
}

// Load reads, decodes and validates the config file at path. Relative paths
// in it are resolved against the file's directory.
func Load(path string) (*Config, error) {
	data, dir, err := fsutil.ReadConfig(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, dir)
}

// Parse decodes and validates a config from YAML bytes. Relative paths are
// kept as written.
func Parse(data []byte) (*Config, error) { return parse(data, "") }

func parse(data []byte, base string) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Reason: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	c := Default()
	lines, yerr := yamlconf.Decode(data, c, decodeOptions)
	if yerr != nil {
		return nil, &Error{Key: yerr.Key, Line: yerr.Line, Reason: yerr.Reason}
	}
	if c.TPMStateDir == "" && c.DataDir != "" {
		c.TPMStateDir = filepath.Join(c.DataDir, "tpm")
	}
	if _, set := lines["api.max_inflight"]; !set && c.API.MaxInflight < c.API.MaxBody {
		c.API.MaxInflight = c.API.MaxBody // the default follows a larger api.max_body
	}
	if base != "" {
		c.resolve(base)
	}
	if errs := c.validate(); len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			e.Line = lines.Line(e.Key)
			all[i] = e
		}
		return nil, errors.Join(all...)
	}
	return c, nil
}

// resolve makes relative paths relative to base.
func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.TPMStateDir)
	abs(&c.API.Socket)
	abs(&c.API.TLSCert)
	abs(&c.API.TLSKey)
	abs(&c.Spool.Dir)
	abs(&c.Sync.ArchiveKey)
	abs(&c.Encryption.ContentKey)
	abs(&c.Encryption.ArchiveKey)
	abs(&c.Sync.CA)
	abs(&c.Sync.Cert)
	abs(&c.Sync.Key)
	abs(&c.Policy)
	abs(&c.PolicyAdmins)
	if dir, ok := strings.CutPrefix(c.TPM, "simulator:"); ok && dir != "" {
		abs(&dir)
		c.TPM = "simulator:" + dir
	}
}

// DeviceID is the device name records carry: "<site>/<device>".
func (c *Config) DeviceID() string { return c.Site + "/" + c.Device }

// SlogLevel is the configured level; Info if it does not parse (it always
// does after validation).
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// Handler returns a slog handler writing to w in the configured format and
// level, for the daemon to build its logger from (nothing here sets a global).
func (l Log) Handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// decodeOptions adds ByteSize to the scalars yamlconf decodes.
var decodeOptions = &yamlconf.Options{Scalars: map[reflect.Type]yamlconf.Scalar{
	reflect.TypeFor[ByteSize](): sizeScalar,
}}
