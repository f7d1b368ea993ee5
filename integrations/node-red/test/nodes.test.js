'use strict';
// Tests of nodes/edgeseal.js under a stand-in for Node-RED's runtime API
// (RED.nodes.createNode, registerType, getNode, RED.util.cloneMessage):
// where fields come from, the export id, which output each outcome takes,
// a batch line by line, and a redeploy ending the retries. The real
// Node-RED runs the same nodes in the repository's system tests.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const register = require('../nodes/edgeseal');

function fakeRED(credentials) {
  const types = {};
  const nodes = {};
  const RED = {
    nodes: {
      createNode(node, config) {
        node.id = config.id;
        node.credentials = credentials[config.id];
        node.handlers = {};
        node.warnings = [];
        node.errors = [];
        node.on = (ev, fn) => { node.handlers[ev] = fn; };
        node.status = (s) => { node.lastStatus = s; };
        node.warn = (m) => node.warnings.push(m);
        node.error = (m) => node.errors.push(m);
        nodes[config.id] = node;
      },
      registerType(name, ctor) { types[name] = ctor; },
      getNode(id) { return nodes[id]; },
    },
    util: { cloneMessage: (m) => JSON.parse(JSON.stringify(m)) },
  };
  register(RED);
  return { RED, types, nodes };
}

// input sends msg to node and resolves with what it sent, once done.
function input(node, msg) {
  return new Promise((resolve, reject) => {
    const sent = [];
    node.handlers.input(msg, (out) => sent.push(out), (err) => (err ? reject(err) : resolve(sent)));
  });
}

function close(node) {
  return new Promise((resolve) => node.handlers.close(resolve));
}

// outputOf is the index of the one output an output array uses.
function outputOf(out) {
  const used = out.map((m, i) => (m ? i : -1)).filter((i) => i >= 0);
  assert.equal(used.length, 1, `one output per message, got ${JSON.stringify(out)}`);
  return used[0];
}

function fakeAgent(t, handler) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'esnr-'));
  const sock = path.join(dir, 'agent.sock');
  const calls = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const call = { url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      calls.push(call);
      const [status, out, headers] = handler(call, calls.length);
      res.writeHead(status, { 'Content-Type': 'application/json', ...(headers || {}) });
      res.end(typeof out === 'string' ? out : JSON.stringify(out));
    });
  });
  srv.listen(sock);
  t.after(() => {
    srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { sock, calls };
}

function setup(t, sock, exportConfig, agentConfig = {}) {
  const { types, nodes } = fakeRED({ cfg: { token: 'tok-123' } });
  new types['edgeseal-agent']({ id: 'cfg', address: sock, retryFor: '2', ...agentConfig });
  new types['edgeseal-export']({ id: 'exp', agent: 'cfg', mode: 'auto', ...exportConfig });
  t.after(() => close(nodes.cfg));
  return nodes;
}

test('JSON export: node settings first, then msg properties; accepted, duplicate, refused', async (t) => {
  const answers = [
    [201, { exportId: 'inv-1', seq: 3 }],
    [200, { exportId: 'inv-1', seq: 3, duplicate: true }],
    [422, { error: { code: 'classification_not_allowed', field: 'classification', message: 'no', exportId: 'inv-1', seq: 4 } }],
  ];
  const { sock, calls } = fakeAgent(t, (call, n) => answers[n - 1]);
  const nodes = setup(t, sock, { workflow: 'invoices-daily', destination: 'archive', classification: '' });
  const msg = () => ({ payload: { total: 1 }, exportId: 'inv-1', workflow: 'ignored', classification: 'internal', purpose: 'month end' });
  const outs = [];
  for (let i = 0; i < 3; i++) {
    outs.push(...await input(nodes.exp, msg()));
  }
  const env = JSON.parse(calls[0].body);
  assert.deepEqual(env, {
    id: 'inv-1', workflow: 'invoices-daily', app: 'node-red', purpose: 'month end',
    classification: 'internal', destination: 'archive', data: { total: 1 },
  });
  assert.equal(calls[0].headers.authorization, 'Bearer tok-123');
  assert.deepEqual(outs.map(outputOf), [0, 1, 2]);
  assert.equal(outs[0][0].edgeseal.receipt.seq, 3);
  assert.equal(outs[1][1].edgeseal.outcome, 'duplicate');
  assert.equal(outs[2][2].edgeseal.error.code, 'classification_not_allowed');
  assert.equal(outs[2][2].edgeseal.error.field, 'classification');
  assert.equal(outs[2][2].edgeseal.attempts, 1);
  await close(nodes.exp);
});

test('without msg.exportId the node makes one and keeps it across retries', async (t) => {
  const { sock, calls } = fakeAgent(t, (call, n) => (n === 1
    ? [503, { error: { code: 'busy', message: 'busy', field: '' } }, { 'Retry-After': '0' }]
    : [201, { exportId: JSON.parse(call.body).id, seq: 1 }]));
  const nodes = setup(t, sock, { workflow: 'w', classification: 'internal', destination: 'archive' });
  const [out] = await input(nodes.exp, { payload: { a: 1 } });
  assert.equal(outputOf(out), 0);
  const m = out[0];
  assert.match(m.exportId, /^[0-9a-f]{32}$/);
  assert.equal(m.edgeseal.attempts, 2);
  assert.equal(JSON.parse(calls[0].body).id, m.exportId);
  assert.equal(JSON.parse(calls[1].body).id, m.exportId);
  await close(nodes.exp);
});

test('raw export: a Buffer with the content type and Edgeseal-* headers', async (t) => {
  const { sock, calls } = fakeAgent(t, () => [201, { exportId: 'r-1', seq: 1 }]);
  const nodes = setup(t, sock, { workflow: 'monthly-report', classification: 'internal', destination: 'archive', contentType: 'text/csv' });
  const [out] = await input(nodes.exp, { payload: Buffer.from('a,b\n'), exportId: 'r-1' });
  assert.equal(outputOf(out), 0);
  assert.equal(calls[0].headers['content-type'], 'text/csv');
  assert.equal(calls[0].headers['edgeseal-workflow'], 'monthly-report');
  assert.equal(calls[0].headers['edgeseal-id'], 'r-1');
  assert.equal(calls[0].body.toString(), 'a,b\n');
  await close(nodes.exp);
});

test('batch: one message per line, each to its own output', async (t) => {
  const { sock } = fakeAgent(t, (call) => {
    const lines = call.body.toString().trim().split('\n').map((l) => JSON.parse(l));
    const statuses = [201, 200, 422];
    return [200, lines.map((l, i) => JSON.stringify({
      line: i + 1, status: statuses[i],
      ...(statuses[i] < 300 ? { receipt: { exportId: l.id, seq: 10 + i } } : { error: { code: 'schema_violation', field: 'data', message: 'x' } }),
    })).join('\n') + '\n'];
  });
  const nodes = setup(t, sock, { mode: 'batch', workflow: 'w', classification: 'internal', destination: 'archive' });
  const outs = await input(nodes.exp, { payload: [{ data: 1, id: 'b-1' }, { data: 2, id: 'b-2' }, { data: 3, id: 'b-3' }] });
  assert.deepEqual(outs.map(outputOf), [0, 1, 2]);
  assert.deepEqual(outs.map((o) => o[outputOf(o)].exportId), ['b-1', 'b-2', 'b-3']);
  assert.deepEqual(outs.map((o) => o[outputOf(o)].payload.data), [1, 2, 3]);
  assert.equal(outs[2][2].edgeseal.line, 3);
  await close(nodes.exp);
});

test('a message the node cannot send goes to failed at once', async (t) => {
  const { sock, calls } = fakeAgent(t, () => [201, {}]);
  const nodes = setup(t, sock, { mode: 'raw', workflow: 'w', classification: 'internal', destination: 'archive' });
  const [out] = await input(nodes.exp, { payload: { not: 'bytes' } });
  assert.equal(outputOf(out), 3);
  assert.equal(out[3].edgeseal.error.code, 'invalid_message');
  assert.equal(calls.length, 0);
  await close(nodes.exp);
});

test('a redeploy ends the retries: in flight and waiting, failed with aborted', async (t) => {
  const nodes = setup(t, path.join(os.tmpdir(), 'esnr-none', 'agent.sock'),
    { workflow: 'w', classification: 'internal', destination: 'archive', concurrency: '1' }, { retryFor: '60' });
  const inFlight = input(nodes.exp, { payload: 1, exportId: 'x' });
  const waiting = input(nodes.exp, { payload: 2, exportId: 'y' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(nodes.exp.lastStatus.fill, 'yellow');
  await close(nodes.exp);
  for (const p of [inFlight, waiting]) {
    const [out] = await p;
    assert.equal(outputOf(out), 3);
    assert.equal(out[3].edgeseal.error.code, 'aborted');
  }
});

test('a bad address is reported at deploy, and messages go to failed', async (t) => {
  const { types, nodes } = fakeRED({});
  new types['edgeseal-agent']({ id: 'cfg', address: 'http://127.0.0.1:8443' });
  new types['edgeseal-export']({ id: 'exp', agent: 'cfg' });
  assert.match(nodes.cfg.errors[0], /TLS only/);
  const [out] = await input(nodes.exp, { payload: 1 });
  assert.equal(outputOf(out), 3);
  assert.equal(out[3].edgeseal.error.code, 'no_agent');
  await close(nodes.exp);
});
