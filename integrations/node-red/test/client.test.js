'use strict';
// Tests of lib/client.js against small HTTP servers standing in for the
// agent: on a unix socket, and over TLS with a certificate made by the
// openssl command docs/integrations.md gives (skipped without openssl).

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const {
  Client, parseAddress, jsonRequest, rawRequest, batchRequest, retryAfter,
} = require('../lib/client');

const TOKEN = 'unit-token-0123456789';

function tmpdir(t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'esnr-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

// agent serves handler(req, body, n) -> [status, headers, body] on a unix
// socket; n counts requests from 1. It returns the socket and the calls.
function agent(t, sock, handler) {
  const calls = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      calls.push({ method: req.method, url: req.url, headers: req.headers, body });
      const [status, headers, out] = handler(req, body, calls.length);
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(typeof out === 'string' ? out : JSON.stringify(out));
    });
  });
  srv.listen(sock);
  t.after(() => srv.close());
  return { srv, calls };
}

const receipt = { exportId: 'inv-1', seq: 4, leaf: 'sha256:aa', journalSize: 5, digest: 'sha256:bb' };
const fields = { id: 'inv-1', workflow: 'invoices-daily', app: 'node-red', classification: 'internal', destination: 'archive' };
const fast = { backoffMin: 20, backoffMax: 100 };

test('address forms', () => {
  assert.deepEqual(parseAddress('/run/edgeseal/agent.sock'), { socketPath: '/run/edgeseal/agent.sock' });
  assert.deepEqual(parseAddress('unix:/run/edgeseal/agent.sock'), { socketPath: '/run/edgeseal/agent.sock' });
  assert.deepEqual(parseAddress('https://127.0.0.1:8443'), { host: '127.0.0.1', port: 8443, servername: undefined });
  for (const bad of ['http://127.0.0.1:8443', 'agent.sock', '', 'https://127.0.0.1:8443/v1/exports', 'https://u:p@127.0.0.1:1']) {
    assert.throws(() => parseAddress(bad), /edgeseal: address/, bad);
  }
});

test('requests: JSON envelope, raw headers, batch lines', () => {
  const j = jsonRequest({ ...fields, schema: 'invoice@1', purpose: '' }, { total: 1 });
  assert.equal(j.path, '/v1/exports');
  assert.deepEqual(JSON.parse(j.body), { ...fields, schema: 'invoice@1', data: { total: 1 } });
  const r = rawRequest(fields, 'a,b\n1,2\n', 'text/csv');
  assert.equal(r.headers['Content-Type'], 'text/csv');
  assert.equal(r.headers['Edgeseal-Workflow'], 'invoices-daily');
  assert.equal(r.headers['Edgeseal-Id'], 'inv-1');
  assert.equal(r.headers['Edgeseal-Purpose'], undefined);
  assert.equal(r.body.toString(), 'a,b\n1,2\n');
  assert.throws(() => rawRequest(fields, { a: 1 }), /Buffer or a string/);
  const b = batchRequest({ ...fields, id: undefined }, [{ data: { n: 1 }, id: 'x-1' }, { data: { n: 2 }, classification: 'confidential' }]);
  const lines = b.body.toString().trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].id, 'x-1');
  assert.match(lines[1].id, /^[0-9a-f]{32}$/);
  assert.equal(lines[1].classification, 'confidential');
  assert.deepEqual(b.ids, [lines[0].id, lines[1].id]);
  assert.throws(() => batchRequest(fields, []), /non-empty array/);
  assert.throws(() => batchRequest(fields, [{ nodata: 1 }]), /item 1/);
});

test('Retry-After: seconds and dates', () => {
  assert.equal(retryAfter('5'), 5000);
  assert.equal(retryAfter(undefined), 0);
  assert.equal(retryAfter('soon'), 0);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now), 3000);
});

test('accepted, duplicate and refused; a 4xx is never retried', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  const answers = [[201, {}, receipt], [200, {}, { ...receipt, duplicate: true }],
    [422, {}, { error: { code: 'schema_violation', field: 'data', message: 'total: required', exportId: 'inv-1', seq: 9, leaf: 'sha256:cc' } }]];
  const { calls } = agent(t, sock, (req, body, n) => answers[n - 1]);
  const c = new Client({ address: sock, token: TOKEN, ...fast });
  t.after(() => c.close());
  const req = jsonRequest(fields, { total: 1 });
  const a = await c.send(req);
  assert.equal(a.outcome, 'accepted');
  assert.deepEqual(a.answer, receipt);
  assert.equal(calls[0].headers.authorization, `Bearer ${TOKEN}`);
  assert.equal(calls[0].url, '/v1/exports');
  assert.equal((await c.send(req)).outcome, 'duplicate');
  const r = await c.send(req);
  assert.equal(r.outcome, 'refused');
  assert.equal(r.status, 422);
  assert.equal(r.attempts, 1);
  assert.deepEqual(r.error, { code: 'schema_violation', field: 'data', message: 'total: required', exportId: 'inv-1', seq: 9, leaf: 'sha256:cc' });
  assert.equal(calls.length, 3);
});

test('503 is retried after Retry-After, with the same body', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  const { calls } = agent(t, sock, (req, body, n) => (n === 1
    ? [503, { 'Retry-After': '1' }, { error: { code: 'not_ready', message: 'the agent is starting', field: '' } }]
    : [201, {}, receipt]));
  const c = new Client({ address: sock, token: TOKEN, ...fast });
  t.after(() => c.close());
  const retries = [];
  const begin = Date.now();
  const res = await c.send(jsonRequest(fields, { total: 1 }), { onRetry: (n, wait, why) => retries.push([n, wait, why.code]) });
  assert.equal(res.outcome, 'accepted');
  assert.equal(res.attempts, 2);
  assert.ok(Date.now() - begin >= 1000, 'waited less than Retry-After');
  assert.deepEqual(retries, [[1, 1000, 'not_ready']]);
  assert.deepEqual(calls[0].body, calls[1].body);
});

test('a missing socket and a refused connection are retried until the agent listens', async (t) => {
  const sock = path.join(tmpdir(t), 'late.sock');
  const c = new Client({ address: sock, token: TOKEN, ...fast });
  t.after(() => c.close());
  const codes = [];
  const p = c.send(jsonRequest(fields, 1), { onRetry: (n, wait, why) => codes.push(why.code) });
  await new Promise((r) => setTimeout(r, 300));
  // A socket file nobody listens on: connection refused.
  const dead = http.createServer();
  await new Promise((r) => dead.listen(sock, r));
  await new Promise((r) => dead.close(r)); // unlinks it again
  agent(t, sock, () => [201, {}, receipt]);
  const res = await p;
  assert.equal(res.outcome, 'accepted');
  assert.ok(res.attempts > 1);
  assert.ok(codes.includes('ENOENT'), codes.join(','));
});

test('a 200 after a lost answer is accepted: the lost attempt journaled it', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  let n = 0;
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      if (n === 1) {
        req.socket.destroy(); // journaled, then the answer is lost
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ...receipt, duplicate: true }));
    });
  });
  srv.listen(sock);
  t.after(() => srv.close());
  const c = new Client({ address: sock, token: TOKEN, ...fast });
  t.after(() => c.close());
  const res = await c.send(jsonRequest(fields, 1));
  assert.equal(res.outcome, 'accepted');
  assert.equal(res.attempts, 2);
  assert.equal(res.answer.duplicate, true);
  // A 200 at the first attempt is a duplicate.
  const again = await c.send(jsonRequest(fields, 1));
  assert.equal(again.outcome, 'duplicate');
});

test('hostile answers: too large, not JSON, not an API status', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  const answers = [
    [201, {}, 'x'.repeat(4096)],
    [418, { 'Content-Type': 'text/plain' }, 'teapot'],
    [302, { Location: '/elsewhere' }, ''],
    [201, {}, 'not json'],
  ];
  const { calls } = agent(t, sock, (req, body, n) => answers[n - 1]);
  const c = new Client({ address: sock, token: TOKEN, maxAnswer: 1024, ...fast });
  t.after(() => c.close());
  const big = await c.send(jsonRequest(fields, 1));
  assert.equal(big.outcome, 'failed');
  assert.equal(big.error.code, 'EEDGESEALANSWER');
  const tea = await c.send(jsonRequest(fields, 1));
  assert.equal(tea.outcome, 'refused');
  assert.deepEqual(tea.error, { code: 'http_418', message: 'teapot', field: '' });
  const moved = await c.send(jsonRequest(fields, 1));
  assert.equal(moved.outcome, 'failed');
  assert.equal(moved.error.code, 'http_302');
  const odd = await c.send(jsonRequest(fields, 1));
  assert.equal(odd.outcome, 'accepted');
  assert.equal(odd.answer, undefined);
  assert.equal(calls.length, 4);
});

test('gives up after retryFor: failed, with the last cause', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  const { calls } = agent(t, sock, () => [503, { 'Retry-After': '1' }, { error: { code: 'busy', message: 'journal busy', field: '' } }]);
  const c = new Client({ address: sock, token: TOKEN, retryFor: 1500, ...fast });
  t.after(() => c.close());
  const res = await c.send(jsonRequest(fields, 1));
  assert.equal(res.outcome, 'failed');
  assert.equal(res.error.code, 'busy');
  assert.equal(res.status, 503);
  assert.match(res.error.message, /gave up after 2 attempts/);
  assert.equal(calls.length, 2);
});

test('an abort ends the retries', async (t) => {
  const c = new Client({ address: path.join(tmpdir(t), 'none.sock'), token: TOKEN, ...fast });
  t.after(() => c.close());
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const res = await c.send(jsonRequest(fields, 1), { signal: ac.signal });
  assert.equal(res.outcome, 'failed');
  assert.equal(res.error.code, 'aborted');
});

test('a batch answers line by line', async (t) => {
  const sock = path.join(tmpdir(t), 'a.sock');
  agent(t, sock, (req, body) => {
    const lines = body.toString().trim().split('\n');
    return [200, { 'Content-Type': 'application/x-ndjson' }, lines.map((l, i) => JSON.stringify(i === 1
      ? { line: i + 1, status: 422, error: { code: 'schema_violation', field: 'data', message: 'x' } }
      : { line: i + 1, status: 201, receipt: { ...receipt, exportId: JSON.parse(l).id } })).join('\n') + '\n'];
  });
  const c = new Client({ address: sock, token: TOKEN, ...fast });
  t.after(() => c.close());
  const req = batchRequest(fields, [{ data: 1, id: 'b-1' }, { data: 2, id: 'b-2' }, { data: 3, id: 'b-3' }]);
  const res = await c.send(req);
  assert.equal(res.outcome, 'batch');
  assert.deepEqual(res.answer.map((l) => l.status), [201, 422, 201]);
  assert.equal(res.answer[2].receipt.exportId, 'b-3');
});

function haveOpenSSL() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('TLS: refused without the CA (not retried, with a hint), accepted with it', { skip: !haveOpenSSL() && 'openssl not installed' }, async (t) => {
  const d = tmpdir(t);
  const crt = path.join(d, 'api-cert.pem');
  const key = path.join(d, 'api-key.pem');
  // The recipe of docs/integrations.md.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '825', '-subj', '/CN=edgeseal agent API', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', crt], { stdio: 'ignore' });
  let n = 0;
  const srv = https.createServer({ cert: fs.readFileSync(crt), key: fs.readFileSync(key) }, (req, res) => {
    n++;
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(receipt));
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const address = `https://127.0.0.1:${srv.address().port}`;
  const bare = new Client({ address, token: TOKEN, ...fast });
  t.after(() => bare.close());
  const f = await bare.send(jsonRequest(fields, 1));
  assert.equal(f.outcome, 'failed');
  assert.equal(f.attempts, 1);
  assert.equal(f.error.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  assert.match(f.error.message, /CA file/);
  const trusted = new Client({ address, token: TOKEN, caFile: crt, ...fast });
  t.after(() => trusted.close());
  const ok = await trusted.send(jsonRequest(fields, 1));
  assert.equal(ok.outcome, 'accepted');
  assert.equal(n, 1);
});
