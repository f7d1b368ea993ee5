package config

import (
	"net"
	"path/filepath"
	"time"
)

// DefaultSessionTTL is api.session_ttl's default.
const DefaultSessionTTL = 8 * time.Hour

// API configures the read API (docs/archive-api.md); an empty Listen
// turns it off.
type API struct {
	// Listen is HOST:PORT. Off loopback, TLSCert and TLSKey are
	// required: the API is never served in the clear on the network.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are the server certificate (PEM, with its
	// chain) and key; relative to the config file.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SessionTTL is how long a session lasts after sign-in.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// UsersFile holds the local accounts (edgeseal archive users);
	// default <data_dir>/users.json.
	UsersFile string `yaml:"users_file"`
}

// TLS reports whether the API serves TLS.
func (a API) TLS() bool { return a.TLSCert != "" }

func (c *Config) apiDefaults(base string) {
	if c.API.SessionTTL == 0 {
		c.API.SessionTTL = DefaultSessionTTL
	}
	if c.API.UsersFile == "" && c.DataDir != "" {
		c.API.UsersFile = filepath.Join(c.DataDir, "users.json")
	}
	if base != "" {
		for _, p := range []*string{&c.API.TLSCert, &c.API.TLSKey, &c.API.UsersFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
}

func (c *Config) validateAPI(bad func(key, format string, a ...any)) {
	a := c.API
	if (a.TLSCert == "") != (a.TLSKey == "") {
		bad("api.tls_cert", "tls_cert and tls_key go together")
	}
	if a.SessionTTL < time.Minute || a.SessionTTL > 30*24*time.Hour {
		bad("api.session_ttl", "%s: want 1m to 720h", a.SessionTTL)
	}
	if a.Listen == "" {
		return
	}
	if _, port, err := net.SplitHostPort(a.Listen); err != nil || port == "" {
		bad("api.listen", "%q is not host:port", a.Listen)
	} else if !a.TLS() && !loopback(a.Listen) {
		bad("api.listen", "%q is not a loopback address: set api.tls_cert and api.tls_key to serve the API on the network", a.Listen)
	}
}
