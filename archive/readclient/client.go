// Package readclient is the client side of the archive's read API
// (docs/archive-api.md) that `edgeseal proof --archive` and `edgeseal
// evidence --archive` need: searching the export index for an export id,
// fetching a stored bundle and its receipt, the proof the archive builds of
// an export, and an evidence pack (ReadPack reads its tar stream within
// bounds, refusing links and paths that escape). It authenticates with a session token (Authorization: Bearer),
// speaks HTTPS (plain HTTP only to a loopback address), bounds every answer
// and checks a fetched bundle against the digest it was asked for. Nothing
// it returns is trusted: the proof built from it is checked offline.
package readclient

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Bounds of what the client reads.
const (
	MaxBundle    = 1<<30 + 1536*(100_000+2) + 1024 // the largest bundle tar a reader accepts
	MaxPage      = 16 << 20                        // one page of search results
	MaxPages     = 100                             // pages followed for one search
	DefaultLimit = 1000
)

// Client talks to one archive's read API.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client of the API at base ("https://archive:8443"), with
// the session token and, when not nil, the CA certificates (PEM) the
// server's certificate must chain to.
func New(base, token string, caPEM []byte) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("readclient: archive URL %q: want https://HOST[:PORT]", base)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, fmt.Errorf("readclient: plain http only to a loopback address, not %s", u.Host)
		}
	default:
		return nil, fmt.Errorf("readclient: archive URL scheme %q", u.Scheme)
	}
	if token == "" {
		return nil, errors.New("readclient: no session token")
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, ResponseHeaderTimeout: time.Minute}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("readclient: no certificate in the CA file")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &Client{base: u, token: token, http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("readclient: redirect refused")
	}}}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StatusError is an answer other than 200: its status and the API's error.
type StatusError struct {
	Status  int
	Code    string // "not_found", "gone", "forbidden", ...
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("readclient: archive answered %d %s: %s", e.Status, e.Code, e.Message)
}

// do sends GET path?query (path already escaped) with the token.
func (c *Client) do(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := *c.base
	raw := c.base.EscapedPath() + path
	p, err := url.PathUnescape(raw)
	if err != nil {
		return nil, fmt.Errorf("readclient: path %q: %w", path, err)
	}
	u.Path, u.RawPath = p, raw
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("readclient: %w", err)
	}
	return resp, nil
}

// statusError reads the API's error of an answer other than 200.
func statusError(status int, body []byte) error {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &e)
	return &StatusError{Status: status, Code: e.Error, Message: e.Message}
}

// get fetches path?query and returns at most max bytes of the body.
func (c *Client) get(ctx context.Context, path string, query url.Values, max int64) ([]byte, error) {
	resp, err := c.do(ctx, path, query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("readclient: %s: %w", path, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("readclient: %s: answer over %d bytes: %w", path, max, wire.ErrTooLarge)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp.StatusCode, body)
	}
	return body, nil
}

// Entry is what the client reads of an export index entry (other members
// are ignored, as the API's clients must).
type Entry struct {
	Device    string `json:"device"`
	Export    string `json:"export"`
	Seq       uint64 `json:"seq"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Principal string `json:"principal"`
	Time      string `json:"time"`
	Bundle    string `json:"bundle"`
	LogIndex  uint64 `json:"logIndex"`
	RefusedBy string `json:"refusedBy"`
	Reason    string `json:"reason"`
}

// Exports searches the index for the accepted export records of id,
// narrowed by device and principal when not empty, following the pages.
func (c *Client) Exports(ctx context.Context, id, device, principal string) ([]Entry, error) {
	return c.search(ctx, id, device, principal, "accepted", "export")
}

// Refusals searches the index for the refused exports of id (its
// export.rejected records: who refused it and why), narrowed by device
// and principal when not empty, following the pages.
func (c *Client) Refusals(ctx context.Context, id, device, principal string) ([]Entry, error) {
	return c.search(ctx, id, device, principal, "refused", "export.rejected")
}

// search is the entries of id with status and type.
func (c *Client) search(ctx context.Context, id, device, principal, status, typ string) ([]Entry, error) {
	q := url.Values{"export": {id}, "status": {status}, "limit": {fmt.Sprint(DefaultLimit)}}
	if device != "" {
		q.Set("device", device)
	}
	if principal != "" {
		q.Set("principal", principal)
	}
	var out []Entry
	for range MaxPages {
		body, err := c.get(ctx, "/v1/exports", q, MaxPage)
		if err != nil {
			return nil, err
		}
		items, next, err := ParsePage(body)
		if err != nil {
			return nil, err
		}
		for _, e := range items {
			if e.Type == typ && e.Export == id {
				out = append(out, e)
			}
		}
		if next == "" {
			return out, nil
		}
		q.Set("cursor", next)
	}
	return nil, fmt.Errorf("readclient: search for %q: more than %d pages", id, MaxPages)
}

// ParsePage reads one page of search results: {"items":[...],"next"},
// unknown members ignored (the API adds members within v1), at most
// DefaultLimit items, a cursor of at most 4096 bytes.
func ParsePage(body []byte) ([]Entry, string, error) {
	var page struct {
		Items []Entry `json:"items"`
		Next  string  `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("readclient: search answer: %w", err)
	}
	if len(page.Items) > DefaultLimit || len(page.Next) > 4096 {
		return nil, "", fmt.Errorf("readclient: search answer of %d items, cursor of %d bytes", len(page.Items), len(page.Next))
	}
	return page.Items, page.Next, nil
}

// Bundle fetches the stored bundle of digest ("sha256:<hex>") and checks
// that its bytes hash to it.
func (c *Client) Bundle(ctx context.Context, digest string) ([]byte, error) {
	d, err := wire.ParseHash(digest)
	if err != nil {
		return nil, fmt.Errorf("readclient: %w", err)
	}
	raw, err := c.get(ctx, "/v1/bundles/"+digest, nil, MaxBundle)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(raw) != d {
		return nil, fmt.Errorf("readclient: the archive served other bytes than bundle %s", digest)
	}
	return raw, nil
}

// Receipt fetches the archive's receipt of the bundle of digest.
func (c *Client) Receipt(ctx context.Context, digest string) ([]byte, error) {
	if _, err := wire.ParseHash(digest); err != nil {
		return nil, fmt.Errorf("readclient: %w", err)
	}
	return c.get(ctx, "/v1/bundles/"+digest+"/receipt", nil, archivesig.MaxReceiptSize)
}
