// tests/s3/faults.js PORT UPSTREAM_PORT : a fault proxy for the tests on
// 127.0.0.1:PORT in front of the S3 server of tests/s3/server.js (on
// 127.0.0.1:UPSTREAM_PORT), which still checks every signature. Requests pass
// through unchanged unless a rule, set by the test, says otherwise.
//
// Control (paths no S3 bucket can have, as "_" is not allowed in its names):
//   POST /_faults {"method": "PUT", "match": "substring of the path", "count": N,
//                  "action": "status" | "bare" | "stall" | "cut", "status": 503, "ms": 5000}
//     adds a rule: the next N requests of that method (and path, when `match`
//     is given) get the action; rules apply in the order they were added.
//     - status: answered at once with that HTTP status and S3's error document
//       (500 InternalError, 503 SlowDown, 429 TooManyRequests, 400
//       RequestTimeout: S3's answer to a PUT whose body stalled, 404
//       NoSuchKey), nothing forwarded;
//     - bare: answered at once with that HTTP status and no body at all
//       (Content-Length: 0), as a proxy or router in front of S3 may answer;
//     - stall: the request is read, then neither forwarded nor answered for
//       `ms` (past the client's timeout); then the connection is dropped;
//     - cut: a PUT's body is forwarded only in half, then both connections are
//       dropped; a GET's answer is passed on with its Content-Length removed
//       and only half its body, properly framed (chunked, then the
//       connection closed): a truncation only a checksum can tell.
//   GET /_faults -> {"rules": [...left], "log": [{"method", "path", "action", "ms"}]}
//     one log entry per proxied request, in arrival order (action "pass" when
//     no rule applied, "status 503" and so on; ms: when it arrived, Date.now());
//   DELETE /_faults clears the rules and the log.
// Prints "ready" once it listens; SIGTERM closes it.
'use strict';
const http = require('http');

const [port, upstream] = process.argv.slice(2).map(Number);
if (!port || !upstream) {
  console.error('usage: faults.js PORT UPSTREAM_PORT');
  process.exit(2);
}

const CODES = { 500: 'InternalError', 503: 'SlowDown', 429: 'TooManyRequests', 400: 'RequestTimeout', 404: 'NoSuchKey' };
let rules = [];
let log = [];
const held = new Set();

function takeRule(req) {
  const i = rules.findIndex((r) => r.method === req.method && (!r.match || req.url.includes(r.match)));
  if (i < 0) return null;
  const rule = rules[i];
  if (--rule.count <= 0) rules.splice(i, 1);
  return rule;
}

function control(req, res, body) {
  const reply = (status, obj) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  if (req.method === 'GET') return reply(200, { rules, log });
  if (req.method === 'DELETE') {
    rules = [];
    log = [];
    return reply(200, {});
  }
  let rule;
  try {
    rule = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return reply(400, { error: `not JSON: ${e.message}` });
  }
  const known = ['method', 'match', 'count', 'action', 'status', 'ms'];
  const unknown = Object.keys(rule).filter((k) => !known.includes(k));
  if (unknown.length) return reply(400, { error: `unknown fields: ${unknown.join(', ')}` });
  if (!['status', 'bare', 'stall', 'cut'].includes(rule.action)) return reply(400, { error: 'bad action' });
  if (['status', 'bare'].includes(rule.action) && !CODES[rule.status]) return reply(400, { error: 'status: 500, 503, 429, 400 or 404' });
  if (rule.action === 'stall' && !(rule.ms > 0)) return reply(400, { error: 'stall needs ms' });
  if (rule.action === 'cut' && !['PUT', 'GET'].includes(rule.method)) return reply(400, { error: 'cut: PUT or GET' });
  if (typeof rule.method !== 'string' || !(rule.count >= 1)) return reply(400, { error: 'method and count >= 1' });
  rules.push(rule);
  return reply(201, rule);
}

function forward(req, body, onResponse, onError) {
  const up = http.request({
    host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers,
    agent: false,
  }, onResponse);
  up.on('error', onError);
  return up;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url === '/_faults' || req.url.startsWith('/_faults?')) return control(req, res, body);
    const rule = takeRule(req);
    const action = rule ? rule.action : 'pass';
    log.push({ method: req.method, path: req.url.split('?')[0], action: rule && ['status', 'bare'].includes(rule.action) ? `${rule.action} ${rule.status}` : action, ms: Date.now() });
    if (action === 'bare') {
      res.writeHead(rule.status, { 'Content-Length': 0 });
      return res.end();
    }
    if (action === 'status') {
      const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${CODES[rule.status]}</Code><Message>injected by the fault proxy</Message></Error>`;
      res.writeHead(rule.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(xml) });
      return res.end(req.method === 'HEAD' ? undefined : xml);
    }
    if (action === 'stall') {
      held.add(req.socket);
      const t = setTimeout(() => { held.delete(req.socket); req.socket.destroy(); }, rule.ms);
      req.socket.on('close', () => { clearTimeout(t); held.delete(req.socket); });
      return undefined;
    }
    const fail = () => { if (!res.headersSent) res.writeHead(502); res.end(); };
    if (action === 'cut' && req.method === 'PUT') {
      // Half the body, then both ends dropped: the upstream never sees its end.
      const up = forward(req, body, () => {}, () => {});
      up.write(body.subarray(0, Math.floor(body.length / 2)), () => {
        setTimeout(() => { up.destroy(); req.socket.destroy(); }, 50);
      });
      return undefined;
    }
    const up = forward(req, body, (ur) => {
      if (action === 'cut') {
        const headers = { ...ur.headers };
        delete headers['content-length'];
        headers.connection = 'close';
        res.writeHead(ur.statusCode, headers);
        const all = [];
        ur.on('data', (c) => all.push(c));
        ur.on('end', () => {
          const whole = Buffer.concat(all);
          res.end(whole.subarray(0, Math.floor(whole.length / 2)));
        });
        return;
      }
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    }, fail);
    up.end(body);
    return undefined;
  });
});

server.listen(port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => {
  for (const s of held) s.destroy();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
