package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent"
)

// Client limits: the largest answer read, for single calls and for a
// batch's NDJSON answer.
const (
	MaxAnswer      = 16 << 20
	MaxBatchAnswer = 256 << 20
)

// ClientOptions says how a Client reaches the agent: its unix socket, or
// its loopback TLS endpoint.
type ClientOptions struct {
	// Socket is the agent's unix socket (api.socket); used when URL is "".
	Socket string
	// URL is the agent's TLS endpoint, https://HOST:PORT.
	URL string
	// CACertFile is a PEM file of the CA (or the self-signed certificate)
	// URL presents; RootCAs is the same as a pool. Neither: the system's.
	CACertFile string
	RootCAs    *x509.CertPool
	// Token is the bearer token sent on every call ("" sends none).
	Token string
	// Timeout bounds each call (0: only the call's context does).
	Timeout time.Duration
	// MaxConns is how many idle keep-alive connections are kept (0: 2).
	MaxConns int
}

// Client calls an agent's local API. It is safe for concurrent use.
type Client struct {
	hc    *http.Client
	base  string
	token string
}

// OptionsError is a ClientOptions NewClient refuses.
type OptionsError struct{ Msg string }

func (e *OptionsError) Error() string { return "api client: " + e.Msg }

// NewClient returns a client for the socket or the TLS endpoint of o.
func NewClient(o ClientOptions) (*Client, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: o.MaxConns, ForceAttemptHTTP2: false}
	c := &Client{hc: &http.Client{Transport: tr, Timeout: o.Timeout}, token: o.Token}
	if o.URL == "" {
		if o.Socket == "" {
			return nil, &OptionsError{Msg: "neither a socket nor a URL"}
		}
		if o.CACertFile != "" || o.RootCAs != nil {
			return nil, &OptionsError{Msg: "a CA certificate goes with a URL"}
		}
		socket := o.Socket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		c.base = "http://agent"
		return c, nil
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &OptionsError{Msg: fmt.Sprintf("URL wants https://HOST:PORT, got %q", o.URL)}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs}
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, &OptionsError{Msg: "CA certificate: " + err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &OptionsError{Msg: fmt.Sprintf("CA certificate file %s holds no PEM certificate", o.CACertFile)}
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	c.base = strings.TrimSuffix(u.String(), "/")
	return c, nil
}

// WithToken returns a client sending tok that shares c's connections.
func (c *Client) WithToken(tok string) *Client {
	d := *c
	d.token = tok
	return &d
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Request is one raw call: Path from the root ("/v1/status"), Header
// extra headers (Authorization is set from the client's token unless
// Header has one).
type Request struct {
	Method      string
	Path        string
	ContentType string
	Header      http.Header
	Body        []byte
}

// Response is a raw answer of any status.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r and returns the answer whatever its status; the error is a
// failed call (connection, context, an answer over MaxAnswer).
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	return c.do(ctx, r, MaxAnswer)
}

func (c *Client) do(ctx context.Context, r Request, limit int64) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, c.base+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("api client: %w", err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api client: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("api client: reading the answer: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("api client: %s %s: answer over %d bytes", r.Method, r.Path, limit)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// StatusError is an answer that is not the call's success: its HTTP
// status, the API's error (ErrorInfo; empty when the body was not the
// API's JSON error) and Retry-After (0 when absent).
type StatusError struct {
	Status     int
	Info       ErrorInfo
	RetryAfter time.Duration
	Body       []byte // the answer as sent
}

func (e *StatusError) Error() string {
	s := "api: " + strconv.Itoa(e.Status)
	if e.Info.Code != "" {
		s += " " + e.Info.Code
	}
	if e.Info.Field != "" {
		s += ": " + e.Info.Field
	}
	if e.Info.Message != "" {
		s += ": " + e.Info.Message
	}
	return s
}

// Code is the API's error code ("" when the body was not the API's error).
func (e *StatusError) Code() string { return e.Info.Code }

// Temporary says the same call may succeed later (503 and 507).
func (e *StatusError) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusInsufficientStorage
}

// statusError makes the error of a non-success answer.
func statusError(r *Response) *StatusError {
	e := &StatusError{Status: r.Status, Body: r.Body, RetryAfter: retryAfter(r.Header.Get("Retry-After"))}
	var eb ErrorBody
	if json.Unmarshal(r.Body, &eb) == nil {
		e.Info = eb.Error
	}
	return e
}

// retryAfter parses a Retry-After of seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// call sends r and decodes a success answer (one of ok) into out.
func (c *Client) call(ctx context.Context, r Request, out any, ok ...int) (*Response, error) {
	resp, err := c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, s := range ok {
		if resp.Status == s {
			if out != nil {
				if err := json.Unmarshal(resp.Body, out); err != nil {
					return resp, fmt.Errorf("api client: %s %s: decoding the answer: %w", r.Method, r.Path, err)
				}
			}
			return resp, nil
		}
	}
	return resp, statusError(resp)
}

// ExportMeta is an export's metadata (the envelope's fields, or the
// Edgeseal-* headers of the raw form). Workflow and App are required by
// the agent; the rest is optional.
type ExportMeta struct {
	ID             string
	Workflow       string
	App            string
	Purpose        string
	Schema         string
	Classification string
	Retention      string
	Destination    string
}

// Header returns the Edgeseal-* headers of m's non-empty fields.
func (m ExportMeta) Header() http.Header {
	h := http.Header{}
	for _, f := range []struct{ k, v string }{
		{HeaderID, m.ID}, {HeaderWorkflow, m.Workflow}, {HeaderApp, m.App}, {HeaderPurpose, m.Purpose},
		{HeaderSchema, m.Schema}, {HeaderClassification, m.Classification},
		{HeaderRetention, m.Retention}, {HeaderDestination, m.Destination},
	} {
		if f.v != "" {
			h.Set(f.k, f.v)
		}
	}
	return h
}

// Envelope returns the JSON envelope of m with data (JSON) as its data
// and mediaType ("" for application/json) as its media_type.
func (m ExportMeta) Envelope(data json.RawMessage, mediaType string) ([]byte, error) {
	env := struct {
		ID             string          `json:"id,omitempty"`
		Workflow       string          `json:"workflow"`
		App            string          `json:"app"`
		Purpose        string          `json:"purpose,omitempty"`
		Schema         string          `json:"schema,omitempty"`
		Classification string          `json:"classification,omitempty"`
		Retention      string          `json:"retention,omitempty"`
		Destination    string          `json:"destination,omitempty"`
		MediaType      string          `json:"media_type,omitempty"`
		Data           json.RawMessage `json:"data"`
	}{m.ID, m.Workflow, m.App, m.Purpose, m.Schema, m.Classification, m.Retention, m.Destination, mediaType, data}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("api client: envelope: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ExportResult is the answer to an accepted export: its receipt
// (Receipt.Duplicate for a repeated id, answered 200) and the answer's
// bytes as sent.
type ExportResult struct {
	Receipt agent.ExportReceipt
	Status  int // 201, or 200 for a repeated id
	Body    []byte
}

// Export posts body in the raw form: the payload bytes with contentType
// and m as Edgeseal-* headers. A refusal is a *StatusError.
func (c *Client) Export(ctx context.Context, m ExportMeta, contentType string, body []byte) (*ExportResult, error) {
	return c.export(ctx, Request{Method: http.MethodPost, Path: "/v1/exports", ContentType: contentType, Header: m.Header(), Body: body})
}

// ExportJSON posts data (JSON) in the JSON envelope with m's fields.
func (c *Client) ExportJSON(ctx context.Context, m ExportMeta, data json.RawMessage) (*ExportResult, error) {
	env, err := m.Envelope(data, "")
	if err != nil {
		return nil, err
	}
	return c.ExportEnvelope(ctx, env)
}

// ExportEnvelope posts env, a JSON envelope as the caller wrote it.
func (c *Client) ExportEnvelope(ctx context.Context, env []byte) (*ExportResult, error) {
	return c.export(ctx, Request{Method: http.MethodPost, Path: "/v1/exports", ContentType: "application/json", Body: env})
}

func (c *Client) export(ctx context.Context, r Request) (*ExportResult, error) {
	res := &ExportResult{}
	resp, err := c.call(ctx, r, &res.Receipt, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, err
	}
	res.Status, res.Body = resp.Status, resp.Body
	return res, nil
}

// Batch posts lines (JSON envelopes, one a line) as one NDJSON batch and
// returns the per-line answers in order. A refusal of the whole batch is
// a *StatusError.
func (c *Client) Batch(ctx context.Context, lines [][]byte) ([]BatchAnswer, error) {
	var body bytes.Buffer
	for _, l := range lines {
		body.Write(l)
		body.WriteByte('\n')
	}
	return c.BatchBody(ctx, body.Bytes())
}

// BatchBody posts body, NDJSON as the caller wrote it, as one batch.
func (c *Client) BatchBody(ctx context.Context, body []byte) ([]BatchAnswer, error) {
	r := Request{Method: http.MethodPost, Path: "/v1/exports:batch", ContentType: NDJSONType, Body: body}
	resp, err := c.do(ctx, r, MaxBatchAnswer)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, statusError(resp)
	}
	var out []BatchAnswer
	dec := json.NewDecoder(bytes.NewReader(resp.Body))
	for {
		var a BatchAnswer
		err := dec.Decode(&a)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("api client: batch answer line %d: %w", len(out)+1, err)
		}
		out = append(out, a)
	}
}

// ExportStatus answers GET /v1/exports/{id}: the status, record and (once
// sealed) inclusion proof of an export. principal ("" for the caller's, or
// any for an auditor) is sent as ?principal=.
func (c *Client) ExportStatus(ctx context.Context, id, principal string) (*agent.ExportInfo, error) {
	p := "/v1/exports/" + url.PathEscape(id)
	if principal != "" {
		p += "?principal=" + url.QueryEscape(principal)
	}
	var info agent.ExportInfo
	if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: p}, &info, http.StatusOK); err != nil {
		return nil, err
	}
	return &info, nil
}

// Checkpoint answers GET /v1/checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*agent.CheckpointInfo, error) {
	var cp agent.CheckpointInfo
	if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/checkpoint"}, &cp, http.StatusOK); err != nil {
		return nil, err
	}
	return &cp, nil
}

// Status answers GET /v1/status.
func (c *Client) Status(ctx context.Context) (*agent.Status, error) {
	var st agent.Status
	if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/status"}, &st, http.StatusOK); err != nil {
		return nil, err
	}
	return &st, nil
}

// Seal asks for a seal now (POST /v1/seal, an operator's).
func (c *Client) Seal(ctx context.Context) (*SealAnswer, error) {
	var a SealAnswer
	if _, err := c.call(ctx, Request{Method: http.MethodPost, Path: "/v1/seal"}, &a, http.StatusOK); err != nil {
		return nil, err
	}
	return &a, nil
}

// Healthz is nil when the process serves (GET /healthz).
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/healthz"}, nil, http.StatusOK)
	return err
}

// Ready is nil when the journal, TPM and policy are open (GET /readyz).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/readyz"}, nil, http.StatusOK)
	return err
}
