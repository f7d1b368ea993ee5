'use strict';
// The edgeseal agent's local API as a Node-RED flow needs it: one export
// (JSON envelope or raw payload) or a batch per call, answered with one
// outcome: accepted (201), duplicate (200), refused (a 4xx, never retried)
// or failed (retries used up, or an error retrying cannot fix). 5xx answers
// and transport failures (connection refused, a missing socket while the
// agent restarts, a reset, a timeout) are retried with capped exponential
// backoff, waiting at least what Retry-After says. Every export carries an
// id before its first attempt, so a retry is answered with the original
// receipt (200, duplicate) instead of journaling it twice.
//
// Plain Node.js (http, https, fs, crypto); no dependencies.

const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const crypto = require('node:crypto');
const net = require('node:net');

// Defaults of the retry and size settings (milliseconds, bytes).
const DEFAULTS = Object.freeze({
  attemptTimeout: 60000, // one request, answer included
  retryFor: 120000, // stop retrying this long after the first attempt
  backoffMin: 250,
  backoffMax: 10000,
  maxAnswer: 16 << 20, // the largest answer read (a batch of 10000 lines fits)
});

// Transport errors worth another attempt: the agent is not (yet) there,
// restarting, or the connection broke. TLS and permission errors are not:
// retrying cannot fix a certificate the flow does not trust.
const RETRY_CODES = new Set([
  'ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED',
  'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTCONN', 'EEDGESEALTIMEOUT',
]);

// Transport errors that prove the request never reached the agent; after
// any other (a reset, a timeout) it may have been journaled.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

// Hints for errors a flow author fixes in the config node.
const HINTS = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the agent\'s certificate is not trusted: set the config node\'s CA file to the agent\'s api.tls_cert (see docs/integrations.md)',
  SELF_SIGNED_CERT_IN_CHAIN: 'the agent\'s certificate is not trusted: set the config node\'s CA file to the CA that signed api.tls_cert',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the agent\'s certificate is not trusted: set the config node\'s CA file to the CA that signed api.tls_cert',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the agent\'s certificate does not name this host: use the address its subjectAltName holds (127.0.0.1)',
  EACCES: 'no permission on the agent\'s socket: add Node-RED\'s user to the socket\'s group (api.socket_group, edgeseal-api) and restart Node-RED',
};

// Fields of an export besides its data, in the JSON envelope's names, and
// the header each travels in for a raw payload.
const FIELDS = [
  ['id', 'Edgeseal-Id'], ['workflow', 'Edgeseal-Workflow'], ['app', 'Edgeseal-App'],
  ['purpose', 'Edgeseal-Purpose'], ['schema', 'Edgeseal-Schema'],
  ['classification', 'Edgeseal-Classification'], ['retention', 'Edgeseal-Retention'],
  ['destination', 'Edgeseal-Destination'],
];

// parseAddress reads the config node's address: a unix socket path
// ("/run/edgeseal/agent.sock" or "unix:/run/edgeseal/agent.sock") or the
// agent's TLS port ("https://127.0.0.1:8443"). Anything else throws.
function parseAddress(address) {
  const a = String(address || '').trim();
  if (a.startsWith('unix:')) {
    return parseAddress(a.slice(5));
  }
  if (a.startsWith('/')) {
    return { socketPath: a };
  }
  let u;
  try {
    u = new URL(a);
  } catch {
    throw new Error(`edgeseal: address ${JSON.stringify(a)} is neither a socket path nor an https:// URL`);
  }
  if (u.protocol !== 'https:') {
    throw new Error(`edgeseal: address ${JSON.stringify(a)}: the agent's TCP port speaks TLS only; use https://`);
  }
  if (u.pathname !== '/' || u.search || u.username || u.password) {
    throw new Error(`edgeseal: address ${JSON.stringify(a)}: give only https://HOST:PORT`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  // SNI carries host names only (RFC 6066), never an address.
  return { host, port: Number(u.port || 443), servername: net.isIP(host) ? undefined : host };
}

// newExportId is the id given to an export that has none: 128 random bits.
function newExportId() {
  return crypto.randomBytes(16).toString('hex');
}

function withoutEmpty(fields) {
  const out = {};
  for (const [name] of FIELDS) {
    const v = fields[name];
    if (v !== undefined && v !== null && v !== '') {
      out[name] = String(v);
    }
  }
  return out;
}

// jsonRequest is POST /v1/exports with the JSON envelope: fields plus data.
function jsonRequest(fields, data) {
  const env = withoutEmpty(fields);
  if (fields.mediaType) {
    env.media_type = String(fields.mediaType);
  }
  env.data = data === undefined ? null : data;
  return {
    path: '/v1/exports',
    headers: { 'Content-Type': 'application/json' },
    body: Buffer.from(JSON.stringify(env)),
  };
}

// rawRequest is POST /v1/exports with the payload's own bytes and type,
// the fields as Edgeseal-* headers.
function rawRequest(fields, payload, contentType) {
  let body;
  if (Buffer.isBuffer(payload)) {
    body = payload;
  } else if (typeof payload === 'string') {
    body = Buffer.from(payload, 'utf8');
  } else {
    throw new TypeError('edgeseal: a raw export needs msg.payload as a Buffer or a string');
  }
  const headers = { 'Content-Type': contentType || 'application/octet-stream' };
  const f = withoutEmpty(fields);
  for (const [name, header] of FIELDS) {
    if (f[name] !== undefined) {
      headers[header] = f[name];
    }
  }
  return { path: '/v1/exports', headers, body };
}

// batchRequest is POST /v1/exports:batch: one JSON envelope per line.
// items are {data, id?, workflow?, ...}; a field an item lacks comes from
// defaults; an item without an id gets one.
function batchRequest(defaults, items) {
  if (!Array.isArray(items) || items.length === 0) {
    throw new TypeError('edgeseal: a batch needs msg.payload as a non-empty array of {data, ...} objects');
  }
  const ids = [];
  const lines = items.map((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item) || !('data' in item)) {
      throw new TypeError(`edgeseal: batch item ${i + 1} is not an object with "data"`);
    }
    const f = { ...defaults };
    for (const [name] of FIELDS) {
      if (item[name] !== undefined && item[name] !== null && item[name] !== '') {
        f[name] = item[name];
      }
    }
    if (!f.id || f.id === defaults.id) {
      f.id = newExportId();
    }
    ids.push(String(f.id));
    const env = withoutEmpty(f);
    env.data = item.data;
    return JSON.stringify(env);
  });
  return {
    path: '/v1/exports:batch',
    headers: { 'Content-Type': 'application/x-ndjson' },
    body: Buffer.from(lines.join('\n') + '\n'),
    ids,
  };
}

// retryAfter reads a Retry-After header (seconds or an HTTP date) in
// milliseconds; 0 when absent or unreadable.
function retryAfter(value, now = Date.now()) {
  if (!value) {
    return 0;
  }
  const v = String(value).trim();
  if (/^\d{1,6}$/.test(v)) {
    return Number(v) * 1000;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? 0 : Math.max(0, t - now);
}

// backoff is the wait before attempt n+1 (n >= 1): doubling from min,
// capped at max, with up to a fifth taken off at random so that many
// flows retrying together spread out.
function backoff(n, min, max) {
  const d = Math.min(max, min * 2 ** Math.min(n - 1, 30));
  return Math.round(d * (1 - Math.random() * 0.2));
}

function parseJSON(buf) {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

// errorOf is the error object of an error answer, or one made up from
// its status when the body is not the API's JSON.
function errorOf(status, body) {
  const b = parseJSON(body);
  if (b && typeof b.error === 'object' && b.error !== null) {
    const e = b.error;
    const out = { code: String(e.code || ''), message: String(e.message || ''), field: String(e.field || '') };
    for (const k of ['exportId', 'seq', 'leaf']) {
      if (e[k] !== undefined) {
        out[k] = e[k];
      }
    }
    return out;
  }
  return { code: `http_${status}`, message: body.toString('utf8', 0, Math.min(body.length, 200)), field: '' };
}

// sleep waits ms, or rejects when signal aborts.
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(signal.reason || new Error('aborted'));
      return;
    }
    const t = setTimeout(() => {
      if (signal) {
        signal.removeEventListener('abort', onAbort);
      }
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason || new Error('aborted'));
    }
    if (signal) {
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

// Client talks to one agent. Options: address, token, ca (PEM string or
// Buffer) or caFile, and the retry settings of DEFAULTS.
class Client {
  constructor(opts) {
    this.opts = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) {
      const v = Number(opts[k]);
      if (opts[k] !== undefined && opts[k] !== '' && Number.isFinite(v) && v >= 0) {
        this.opts[k] = v;
      }
    }
    this.target = parseAddress(opts.address);
    this.token = opts.token || '';
    if (this.target.socketPath) {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      this.mod = http;
    } else {
      let ca = opts.ca;
      if (!ca && opts.caFile) {
        ca = fs.readFileSync(opts.caFile);
      }
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: ca || undefined, minVersion: 'TLSv1.2' });
      this.mod = https;
    }
  }

  // once makes one attempt: {status, headers, body} or a thrown error
  // carrying the transport's code.
  once(req, signal) {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, 'Content-Length': String(req.body.length) };
      if (this.token) {
        headers.Authorization = `Bearer ${this.token}`;
      }
      const o = { method: 'POST', path: req.path, headers, agent: this.agent, signal };
      if (this.target.socketPath) {
        o.socketPath = this.target.socketPath;
      } else {
        o.host = this.target.host;
        o.port = this.target.port;
        if (this.target.servername) {
          o.servername = this.target.servername;
        }
      }
      let r;
      try {
        r = this.mod.request(o, (res) => {
          const chunks = [];
          let n = 0;
          res.on('data', (c) => {
            n += c.length;
            if (n > this.opts.maxAnswer) {
              const e = new Error(`edgeseal: the agent's answer is over ${this.opts.maxAnswer} bytes`);
              e.code = 'EEDGESEALANSWER';
              res.destroy(e);
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
      } catch (e) {
        reject(e); // an invalid header value, for one
        return;
      }
      r.setTimeout(this.opts.attemptTimeout, () => {
        const e = new Error(`edgeseal: no answer within ${this.opts.attemptTimeout} ms`);
        e.code = 'EEDGESEALTIMEOUT';
        r.destroy(e);
      });
      r.on('error', reject);
      r.end(req.body);
    });
  }

  // send posts req until an answer decides it, and resolves to
  // {outcome, status, attempts, answer?, error?}: outcome "accepted"
  // (201, answer the receipt), "duplicate" (200 to a single export, answer
  // the original receipt), "batch" (200 to a batch, answer the lines),
  // "refused" (a 4xx, error the agent's), "failed" (error says why).
  // A 200 after an attempt whose answer was lost (a reset, a timeout, a
  // 500) is "accepted": that attempt most likely journaled it, and
  // uncertain is set (a batch's caller reads it for its 200 lines).
  // onRetry(attempt, wait, why) is called before each wait.
  async send(req, { signal, onRetry } = {}) {
    const start = Date.now();
    let attempt = 0;
    let uncertain = false;
    for (;;) {
      attempt++;
      let res;
      let why;
      let wait;
      try {
        res = await this.once(req, signal);
      } catch (e) {
        if (signal && signal.aborted) {
          return { outcome: 'failed', attempts: attempt, error: { code: 'aborted', message: 'edgeseal: stopped (the flow was redeployed or Node-RED stops)', field: '' } };
        }
        const code = e.code || 'error';
        if (!RETRY_CODES.has(code)) {
          const hint = HINTS[code] ? `; ${HINTS[code]}` : '';
          return { outcome: 'failed', attempts: attempt, error: { code, message: `${e.message}${hint}`, field: '' } };
        }
        why = { code, message: e.message, field: '' };
        uncertain = uncertain || !NOT_SENT_CODES.has(code);
        wait = backoff(attempt, this.opts.backoffMin, this.opts.backoffMax);
      }
      if (res) {
        if (res.status === 201) {
          return { outcome: 'accepted', status: 201, attempts: attempt, answer: parseJSON(res.body) };
        }
        if (res.status === 200) {
          const body = req.path.endsWith(':batch') ? res.body.toString('utf8') : parseJSON(res.body);
          if (req.path.endsWith(':batch')) {
            const lines = body.split('\n').filter((l) => l.trim() !== '').map((l) => parseJSON(Buffer.from(l)));
            return { outcome: 'batch', status: 200, attempts: attempt, answer: lines, uncertain };
          }
          const dup = body && body.duplicate && !uncertain;
          return { outcome: dup ? 'duplicate' : 'accepted', status: 200, attempts: attempt, answer: body, uncertain };
        }
        if (res.status >= 400 && res.status < 500) {
          return { outcome: 'refused', status: res.status, attempts: attempt, error: errorOf(res.status, res.body) };
        }
        if (res.status < 500) {
          return { outcome: 'failed', status: res.status, attempts: attempt, error: { code: `http_${res.status}`, message: 'edgeseal: unexpected answer', field: '' } };
        }
        why = errorOf(res.status, res.body);
        why.status = res.status;
        uncertain = uncertain || res.status === 500;
        wait = Math.max(backoff(attempt, this.opts.backoffMin, this.opts.backoffMax), retryAfter(res.headers['retry-after']));
      }
      if (Date.now() + wait - start > this.opts.retryFor) {
        return { outcome: 'failed', status: why.status, attempts: attempt, error: { ...why, message: `edgeseal: gave up after ${attempt} attempts: ${why.message}` } };
      }
      if (onRetry) {
        onRetry(attempt, wait, why);
      }
      try {
        await sleep(wait, signal);
      } catch {
        return { outcome: 'failed', attempts: attempt, error: { code: 'aborted', message: 'edgeseal: stopped (the flow was redeployed or Node-RED stops)', field: '' } };
      }
    }
  }

  close() {
    this.agent.destroy();
  }
}

module.exports = {
  Client, DEFAULTS, FIELDS, parseAddress, jsonRequest, rawRequest, batchRequest, retryAfter, backoff, newExportId, errorOf,
};
