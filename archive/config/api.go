package config

import (
	"net"
	"net/url"
	"path/filepath"
	"slices"
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
	// OIDC, when Issuer is set, signs users in from the organization's
	// identity provider.
	OIDC OIDC `yaml:"oidc"`
	// Decrypt says which roles may decrypt the payloads of which
	// classification through the API. Absent or empty: no one may
	// decrypt (payloads are served sealed only).
	Decrypt []DecryptRule `yaml:"decrypt"`
}

// DecryptRule lets Roles decrypt the payloads of exports of
// Classification ("*": every classification no other rule names, and
// exports without one).
type DecryptRule struct {
	Classification string   `yaml:"classification"`
	Roles          []string `yaml:"roles"`
}

// DecryptMap is Decrypt as classification -> roles.
func (a API) DecryptMap() map[string][]string {
	m := map[string][]string{}
	for _, r := range a.Decrypt {
		m[r.Classification] = append(m[r.Classification], r.Roles...)
	}
	return m
}

// DecryptRoles are the roles api.decrypt may name.
var DecryptRoles = []string{"auditor", "decryptor"}

// OIDC configures sign-in by OpenID Connect.
type OIDC struct {
	// Issuer is the provider's issuer URL: https, or http on a loopback
	// host only.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret (one line, 0600).
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is https://HOST:PORT/v1/oidc/callback of this archive,
	// as registered at the provider.
	RedirectURL string `yaml:"redirect_url"`
	// RoleClaim names the claim whose value (or values) map to roles.
	RoleClaim string `yaml:"role_claim"`
	// Roles map values of the role claim to archive roles (auditor,
	// operator, policy-admin); other values grant nothing.
	Roles []OIDCRole `yaml:"roles"`
}

// OIDCRole grants Role to a user whose role claim holds Value.
type OIDCRole struct {
	Value string `yaml:"value"`
	Role  string `yaml:"role"`
}

// RoleMap is Roles as claim value -> roles.
func (o OIDC) RoleMap() map[string][]string {
	m := map[string][]string{}
	for _, r := range o.Roles {
		m[r.Value] = append(m[r.Value], r.Role)
	}
	return m
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
		for _, p := range []*string{&c.API.TLSCert, &c.API.TLSKey, &c.API.UsersFile, &c.API.OIDC.ClientSecretFile} {
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
	c.validateOIDC(bad)
	seen := map[string]bool{}
	for _, rule := range a.Decrypt {
		class := rule.Classification
		if class == "" || len(class) > 256 {
			bad("api.decrypt", "classification %.60q: want 1 to 256 bytes, or \"*\"", class)
		}
		if seen[class] {
			bad("api.decrypt", "classification %.60q given twice", class)
		}
		seen[class] = true
		if len(rule.Roles) == 0 {
			bad("api.decrypt", "classification %.60q: no role (leave it out to let no one decrypt it)", class)
		}
		for _, r := range rule.Roles {
			if !slices.Contains(DecryptRoles, r) {
				bad("api.decrypt", "classification %.60q, role %.40q: want auditor or decryptor", class, r)
			}
		}
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

func (c *Config) validateOIDC(bad func(key, format string, a ...any)) {
	o := c.API.OIDC
	if o.Issuer == "" {
		if o.ClientID != "" || o.ClientSecretFile != "" || o.RedirectURL != "" || o.RoleClaim != "" || len(o.Roles) > 0 {
			bad("api.oidc.issuer", "required with the other api.oidc keys")
		}
		return
	}
	if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
		bad("api.oidc.issuer", "%q: want https://HOST[/PATH] (http only on a loopback host)", o.Issuer)
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || u.Path != "/v1/oidc/callback" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
		bad("api.oidc.redirect_url", "%q: want https://HOST:PORT/v1/oidc/callback (this archive's API)", o.RedirectURL)
	}
	if o.ClientID == "" {
		bad("api.oidc.client_id", "required")
	}
	if o.ClientSecretFile == "" {
		bad("api.oidc.client_secret_file", "required")
	}
	if o.RoleClaim == "" || len(o.Roles) == 0 {
		bad("api.oidc.role_claim", "role_claim and roles are required: without them no one gets a role")
	}
	for _, r := range o.Roles {
		if r.Value == "" || (r.Role != "auditor" && r.Role != "operator" && r.Role != "policy-admin" && r.Role != "decryptor") {
			bad("api.oidc.roles", "value %q, role %q: want a value and one of auditor, operator, policy-admin, decryptor", r.Value, r.Role)
		}
	}
	if c.API.Listen == "" {
		bad("api.oidc.issuer", "set, but the API is off (api.listen)")
	}
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}
