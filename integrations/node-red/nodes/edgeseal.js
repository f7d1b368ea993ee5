'use strict';
// The Node-RED nodes of edgeseal: "edgeseal-agent", the config node (where
// the agent listens, the CA that signed its certificate, the bearer token
// in Node-RED's credentials), and "edgeseal-export", which hands
// msg.payload to the agent and sends each outcome to its own output:
// 1 accepted, 2 duplicate, 3 refused, 4 failed (after retries).

const { Client, FIELDS, jsonRequest, rawRequest, batchRequest, newExportId } = require('../lib/client');

// OUTPUT is the output of each outcome.
const OUTPUT = { accepted: 0, duplicate: 1, refused: 2, failed: 3 };

// MAX_QUEUE bounds the messages one export node holds (in flight and
// waiting their turn); more go to the failed output at once.
const MAX_QUEUE = 10000;

// Message properties read when the node's own setting is blank.
const MSG_PROPS = {
  id: 'exportId', workflow: 'workflow', app: 'app', purpose: 'purpose', schema: 'schema',
  classification: 'classification', retention: 'retention', destination: 'destination',
};

module.exports = function register(RED) {
  function EdgesealAgentNode(config) {
    RED.nodes.createNode(this, config);
    this.address = config.address;
    this.caFile = config.caFile;
    this.settings = {
      address: config.address,
      caFile: config.caFile || undefined,
      token: (this.credentials && this.credentials.token) || '',
      retryFor: seconds(config.retryFor),
      attemptTimeout: seconds(config.attemptTimeout),
    };
    this.client = null;
    this.clientError = null;
    try {
      this.client = new Client(this.settings);
    } catch (e) {
      this.clientError = e;
      this.error(e.message);
    }
    this.on('close', (done) => {
      if (this.client) {
        this.client.close();
      }
      done();
    });
  }
  RED.nodes.registerType('edgeseal-agent', EdgesealAgentNode, {
    credentials: { token: { type: 'password' } },
  });

  function EdgesealExportNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const agentNode = RED.nodes.getNode(config.agent);
    const mode = config.mode || 'auto';
    const concurrency = Math.max(1, Math.min(64, Number(config.concurrency) || 4));
    const queue = [];
    const running = new Set();
    const controller = new AbortController();
    const counts = { accepted: 0, duplicate: 0, refused: 0, failed: 0 };

    function status(fill, text) {
      node.status({ fill, shape: fill === 'yellow' ? 'ring' : 'dot', text });
    }

    // fieldsOf reads the export's fields: the node's setting, else the
    // message's property; app defaults to "node-red".
    function fieldsOf(msg) {
      const f = {};
      for (const [name] of FIELDS) {
        // The export id is the message's alone (config.id is the node's).
        const set = name === 'id' ? undefined : config[name];
        f[name] = set !== undefined && set !== '' ? set : msg[MSG_PROPS[name]];
      }
      if (!f.app) {
        f.app = 'node-red';
      }
      return f;
    }

    function emit(outcome, msg) {
      counts[outcome]++;
      const out = [null, null, null, null];
      out[OUTPUT[outcome]] = msg;
      return out;
    }

    // handle sends one message and returns what goes out: an array of
    // output arrays (a batch answers line by line).
    async function handle(msg) {
      const f = fieldsOf(msg);
      let kind = mode;
      if (kind === 'auto') {
        if (Buffer.isBuffer(msg.payload) || (typeof msg.payload === 'string' && (config.contentType || msg.contentType))) {
          kind = 'raw';
        } else {
          kind = 'json';
        }
      }
      let req;
      try {
        if (kind === 'batch') {
          req = batchRequest(f, msg.payload);
        } else {
          if (!f.id) {
            f.id = newExportId(); // before the first attempt: retries are idempotent
          }
          msg.exportId = String(f.id);
          if (kind === 'raw') {
            req = rawRequest(f, msg.payload, config.contentType || msg.contentType);
          } else {
            if (Buffer.isBuffer(msg.payload)) {
              throw new TypeError('edgeseal: a JSON export needs msg.payload as JSON data, not a Buffer (use the raw form)');
            }
            req = jsonRequest(f, msg.payload);
          }
        }
      } catch (e) {
        msg.edgeseal = { outcome: 'failed', attempts: 0, exportId: msg.exportId, error: { code: 'invalid_message', message: e.message, field: '' } };
        node.warn(e.message);
        return [emit('failed', msg)];
      }
      const res = await agentNode.client.send(req, {
        signal: controller.signal,
        onRetry: (attempt, wait, why) => status('yellow', `retrying (${attempt}): ${why.code}`),
      });
      if (res.outcome === 'batch') {
        return batchOutputs(msg, req, res);
      }
      msg.edgeseal = { outcome: res.outcome, status: res.status, attempts: res.attempts, exportId: msg.exportId };
      if (res.answer !== undefined) {
        msg.edgeseal.receipt = res.answer;
      }
      if (res.error) {
        msg.edgeseal.error = res.error;
      }
      if (res.outcome === 'failed') {
        node.warn(`export ${msg.exportId || '(batch)'} failed: ${res.error.message}`);
      }
      return [emit(res.outcome, msg)];
    }

    // batchOutputs sends one message per line of a batch to its output.
    function batchOutputs(msg, req, res) {
      const outs = [];
      req.ids.forEach((id, i) => {
        const line = res.answer.find((l) => l && l.line === i + 1) || {};
        const m = RED.util.cloneMessage(msg);
        m.payload = msg.payload[i];
        m.exportId = id;
        let outcome;
        if (line.status === 201) {
          outcome = 'accepted';
        } else if (line.status === 200) {
          // After a lost answer the lost attempt journaled it.
          outcome = res.uncertain ? 'accepted' : 'duplicate';
        } else if (line.status >= 400 && line.status < 500) {
          outcome = 'refused';
        } else {
          outcome = 'failed';
        }
        m.edgeseal = { outcome, status: line.status, attempts: res.attempts, exportId: id, line: i + 1 };
        if (line.receipt) {
          m.edgeseal.receipt = line.receipt;
        }
        if (line.error) {
          m.edgeseal.error = line.error;
        } else if (outcome === 'failed') {
          m.edgeseal.error = { code: 'no_answer', message: 'edgeseal: the batch answer has no line for this item', field: '' };
        }
        outs.push(emit(outcome, m));
      });
      return outs;
    }

    function showCounts() {
      const fill = counts.failed > 0 ? 'red' : 'green';
      status(fill, `accepted ${counts.accepted}, duplicate ${counts.duplicate}, refused ${counts.refused}, failed ${counts.failed}`);
    }

    function next() {
      while (running.size < concurrency && queue.length > 0) {
        const { msg, send, done } = queue.shift();
        const p = handle(msg).then((outs) => {
          for (const o of outs) {
            send(o);
          }
          showCounts();
          done();
        }, (e) => done(e)).finally(() => {
          running.delete(p);
          next();
        });
        running.add(p);
      }
    }

    if (!agentNode || !agentNode.client) {
      status('red', 'no agent configured');
      node.error(agentNode ? `edgeseal: agent config: ${agentNode.clientError.message}` : 'edgeseal: no agent config node');
    }

    node.on('input', (msg, send, done) => {
      if (!agentNode || !agentNode.client) {
        msg.edgeseal = { outcome: 'failed', attempts: 0, error: { code: 'no_agent', message: 'edgeseal: the export node has no usable agent config node', field: '' } };
        send(emit('failed', msg));
        done();
        return;
      }
      if (running.size + queue.length >= MAX_QUEUE) {
        msg.edgeseal = { outcome: 'failed', attempts: 0, error: { code: 'queue_full', message: `edgeseal: ${MAX_QUEUE} messages already wait for the agent`, field: '' } };
        send(emit('failed', msg));
        done();
        return;
      }
      queue.push({ msg, send, done });
      next();
    });

    node.on('close', (done) => {
      controller.abort(); // the messages in flight end on the failed output
      for (const q of queue.splice(0)) {
        q.msg.edgeseal = { outcome: 'failed', attempts: 0, exportId: q.msg.exportId,
          error: { code: 'aborted', message: 'edgeseal: stopped before it was sent (the flow was redeployed or Node-RED stops)', field: '' } };
        q.send(emit('failed', q.msg));
        q.done();
      }
      Promise.allSettled([...running]).then(() => done());
    });
  }
  RED.nodes.registerType('edgeseal-export', EdgesealExportNode);
};

// seconds turns a setting in seconds into milliseconds (undefined when blank).
function seconds(v) {
  if (v === undefined || v === null || v === '') {
    return undefined;
  }
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n * 1000 : undefined;
}
