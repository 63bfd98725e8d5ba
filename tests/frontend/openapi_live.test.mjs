// Live answers of a real farm against the document (ctest
// frontend_openapi_live, under tests/frontend/with-farm): every route is
// called, and each answer's status, Content-Type, documented headers and
// JSON body (ajv, JSON Schema 2020-12) must be what api/openapi/openapi.json
// says. Event streams: the data of every event against EventData's parts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Contract, loadDocument } from './lib/openapi.mjs';
import { apiUrl, newUser, rateBurst, sleep } from './lib/farm.mjs';
import { readEvents } from './lib/sse.mjs';

const doc = loadDocument();
const c = new Contract(doc);
const alice = newUser();
const admin = newUser({ role: 'admin' });

function call(method, path, { tok = alice.token, body, headers = {}, type } = {}) {
  const h = { ...headers };
  if (tok) h.authorization = `Bearer ${tok}`;
  if (body !== undefined && !(body instanceof Uint8Array)) {
    h['content-type'] = type ?? 'application/json';
    body = JSON.stringify(body);
  } else if (body) {
    h['content-type'] = type;
  }
  return fetch(apiUrl + path, { method, headers: h, body });
}

async function check(method, template, path, opts) {
  return c.assertResponse(method, template, await call(method, path, opts));
}

const terminal = new Set(['succeeded', 'partial', 'failed', 'canceled', 'expired']);

// Follows a generation's stream to its end, checking every event's data.
async function followChecked(id) {
  const res = await call('GET', `/v1/generations/${id}/events`);
  assert.equal(res.status, 200);
  await c.assertResponse('GET', '/v1/generations/{id}/events', res);
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const seen = [];
  for await (const ev of readEvents(res)) {
    const data = JSON.parse(ev.data);
    assert.ok(doc.components.schemas.EventData['x-event-names'].includes(ev.event), `undocumented event ${ev.event}`);
    c.assertSchema(terminal.has(ev.event) ? 'Generation' : 'ProgressEvent', data, `event ${ev.event}`);
    c.assertSchema('EventData', data, `event ${ev.event}`);
    seen.push(ev.event);
  }
  return seen;
}

after(() => {
  // What was checked, for the log: one line per method, path and status.
  console.log([...c.checked].sort().join('\n'));
});

test('the served document is the file in the tree', async () => {
  const res = await call('GET', '/v1/openapi.json', { tok: null });
  const served = await c.assertResponse('GET', '/v1/openapi.json', res);
  assert.deepEqual(served, doc);
});

test('operations routes', async () => {
  const h = await check('GET', '/healthz', '/healthz', { tok: null });
  assert.equal(await h.text(), 'ok');
  await check('GET', '/readyz', '/readyz', { tok: null });
  const m = await check('GET', '/metrics', '/metrics', { tok: null });
  assert.match(await m.text(), /^# (HELP|TYPE) /m);
});

test('generations: create, repeat, conflict, read, list, follow, cancel', async () => {
  const key = `live-${Date.now()}`;
  const body = { kind: 'avatar', prompt: 'a watercolor portrait of a red-haired astronaut', seed: 7 };
  const acc = await check('POST', '/v1/generations', '/v1/generations', { body, headers: { 'idempotency-key': key } });
  assert.equal(acc.status, 'queued');
  const again = await check('POST', '/v1/generations', '/v1/generations', { body, headers: { 'idempotency-key': key } });
  assert.equal(again.id, acc.id);
  await check('POST', '/v1/generations', '/v1/generations', { body: { ...body, seed: 8 }, headers: { 'idempotency-key': key } });
  const bad = await check('POST', '/v1/generations', '/v1/generations', { body: { ...body, width: 1000 } });
  assert.equal(bad.error.code, 'invalid_request');
  assert.equal(bad.error.field, 'width');
  await check('POST', '/v1/generations', '/v1/generations', { body, tok: 'garbage' });
  await check('POST', '/v1/generations', '/v1/generations', { body: new Uint8Array([1]), type: 'text/plain' });

  const events = await followChecked(acc.id);
  assert.equal(events.at(-1), 'succeeded');
  const g = await check('GET', '/v1/generations/{id}', acc.url);
  assert.equal(g.status, 'succeeded');
  assert.ok(g.outputs.length >= 1);
  await check('GET', '/v1/generations/{id}', '/v1/generations/00000000-0000-4000-8000-00000000beef');
  await check('POST', '/v1/generations/{id}/cancel', `${acc.url}/cancel`);

  // A generation long enough to cancel while it runs or waits.
  const long = await check('POST', '/v1/generations', '/v1/generations', { body: { ...body, count: 4, seed: 1 } });
  const canceled = await check('POST', '/v1/generations/{id}/cancel', `${long.url}/cancel`);
  assert.equal(canceled.id, long.id);
  const end = await followChecked(long.id);
  assert.equal(end.at(-1), 'canceled');

  const page = await check('GET', '/v1/generations', '/v1/generations?limit=1');
  assert.equal(page.items.length, 1);
  assert.ok(page.next_cursor);
  await check('GET', '/v1/generations', `/v1/generations?limit=1&cursor=${encodeURIComponent(page.next_cursor)}&kind=avatar`);
  await check('GET', '/v1/generations', '/v1/generations?limit=1000');

  // The output's signed URL serves the image without a header; a bad signature is 404.
  const file = g.outputs[0].url;
  const img = await check('GET', '/v1/files/{a}/{b}/{c}', file, { tok: null });
  assert.ok((await img.arrayBuffer()).byteLength > 0);
  await check('GET', '/v1/files/{a}/{b}/{c}', file.replace(/sig=[0-9a-f]/, 'sig=x'), { tok: null });

  // Delete: running is 409, finished is 204 and then 404.
  const busy = await check('POST', '/v1/generations', '/v1/generations', { body: { ...body, count: 4, seed: 2 } });
  const refused = await check('DELETE', '/v1/generations/{id}', busy.url);
  assert.equal(refused.error.code, 'not_deletable');
  await followChecked(busy.id);
  assert.equal(await check('DELETE', '/v1/generations/{id}', busy.url), null);
  await check('DELETE', '/v1/generations/{id}', busy.url);
  await check('DELETE', '/v1/generations/{id}', busy.url, { tok: null });
});

test('the user event stream', async () => {
  const ctl = new AbortController();
  const res = await fetch(`${apiUrl}/v1/events`, { headers: { authorization: `Bearer ${alice.token}` }, signal: ctl.signal });
  await c.assertResponse('GET', '/v1/events', res);
  let n = 0;
  try {
    for await (const ev of readEvents(res)) {
      c.assertSchema(terminal.has(ev.event) ? 'Generation' : 'ProgressEvent', JSON.parse(ev.data), `event ${ev.event}`);
      if (++n === 5) break;
    }
  } finally {
    ctl.abort();
  }
  assert.equal(n, 5, 'the replay of the earlier generations has at least 5 events');
  await check('GET', '/v1/events', '/v1/events', { tok: null });
  await check('GET', '/v1/generations/{id}/events', '/v1/generations/00000000-0000-4000-8000-00000000beef/events');
  await check('GET', '/v1/generations/{id}/events', '/v1/generations/00000000-0000-4000-8000-00000000beef/events', { headers: { 'last-event-id': 'x' } });
});

test('presets, pose maps, uploads', async () => {
  const presets = await check('GET', '/v1/presets', '/v1/presets');
  assert.ok(presets.poses.length > 0);
  const map = await check('GET', '/v1/presets/poses/{file}', presets.poses[0].map_url, { tok: null });
  const png = new Uint8Array(await map.arrayBuffer());
  await check('GET', '/v1/presets/poses/{file}', '/v1/presets/poses/no-such-pose.png');
  const up = await check('POST', '/v1/uploads', '/v1/uploads', { body: png, type: 'image/png' });
  assert.equal(up.format, 'png');
  await check('POST', '/v1/uploads', '/v1/uploads', { body: new TextEncoder().encode('not an image'), type: 'image/png' });
  await check('POST', '/v1/uploads', '/v1/uploads', { body: png, type: 'image/gif' });
  await check('POST', '/v1/uploads', '/v1/uploads', { body: png, type: 'image/png', tok: null });

  const list = await check('GET', '/v1/uploads', '/v1/uploads?limit=1');
  assert.equal(list.items[0].id, up.id);
  await check('GET', '/v1/uploads', '/v1/uploads?limit=0');
  assert.equal(await check('DELETE', '/v1/uploads/{id}', `/v1/uploads/${up.id}`), null);
  await check('DELETE', '/v1/uploads/{id}', `/v1/uploads/${up.id}`);
  await check('GET', '/v1/uploads', '/v1/uploads', { tok: null });
});

test('credits, ledger, admin routes', async () => {
  await check('GET', '/v1/credits', '/v1/credits');
  const page = await check('GET', '/v1/credits/ledger', '/v1/credits/ledger?limit=2');
  assert.equal(page.items.length, 2);
  await check('GET', '/v1/credits/ledger', '/v1/credits/ledger?cursor=abc');
  const granted = await check('POST', '/v1/admin/credits', '/v1/admin/credits', { tok: admin.token, body: { user_id: alice.sub, amount: 50, reason: 'live test' } });
  assert.equal(granted.user_id, alice.sub);
  await check('POST', '/v1/admin/credits', '/v1/admin/credits', { body: { user_id: alice.sub, amount: 50 } });
  await check('POST', '/v1/admin/credits', '/v1/admin/credits', { tok: admin.token, body: { user_id: alice.sub, amount: 50, bonus: 1 } });
  await check('GET', '/v1/admin/stats', '/v1/admin/stats', { tok: admin.token });
  await check('GET', '/v1/admin/stats', '/v1/admin/stats');
});

// What a client generated from the document sends: its examples are taken,
// and what the server refuses the schemas refuse too (a client validating
// against them learns it before sending).
test('request bodies: the examples are accepted, the refusals are the schemas\' too', async () => {
  const examples = doc.paths['/v1/generations'].post.requestBody.content['application/json'].examples;
  const presets = await check('GET', '/v1/presets', '/v1/presets');
  const map = await call('GET', presets.poses[0].map_url, { tok: null });
  const rich = newUser();
  const up = await check('POST', '/v1/uploads', '/v1/uploads', { tok: rich.token, body: new Uint8Array(await map.arrayBuffer()), type: 'image/png' });
  await call('POST', '/v1/admin/credits', { tok: admin.token, body: { user_id: rich.sub, amount: 1000, reason: 'examples' } });
  for (const [name, { value }] of Object.entries(examples)) {
    const body = structuredClone(value);
    if (body.identity?.upload_id) body.identity.upload_id = up.id;
    c.assertSchema('GenerationRequest', body, `example ${name}`);
    const res = await call('POST', '/v1/generations', { tok: rich.token, body });
    const answer = await c.assertResponse('POST', '/v1/generations', res);
    assert.equal(res.status, 202, `example ${name}: ${JSON.stringify(answer)}`);
  }
  const adminExample = doc.paths['/v1/admin/credits'].post.requestBody.content['application/json'].example;
  c.assertSchema('AdminCreditsRequest', adminExample);
  const refused = [
    ['GenerationRequest', '/v1/generations', alice.token, { kind: 'avatar', prompt: 'p', identity: { generation_id: up.id } }],
    ['GenerationRequest', '/v1/generations', alice.token, { kind: 'avatar', prompt: 'p', identity: { generation_id: up.id, index: 40 } }],
    ['GenerationRequest', '/v1/generations', alice.token, { kind: 'avatar', prompt: 'p', deadline_s: 604801 }],
    ['AdminCreditsRequest', '/v1/admin/credits', admin.token, { user_id: alice.sub, amount: 5 }],
    ['AdminCreditsRequest', '/v1/admin/credits', admin.token, { user_id: alice.sub, amount: 0, reason: 'zero' }],
  ];
  for (const [schema, path, tok, body] of refused) {
    const res = await call('POST', path, { tok, body });
    const answer = await c.assertResponse('POST', path, res);
    assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.status} ${JSON.stringify(answer)}`);
    assert.equal(c.schema(schema)(body), false, `${schema} takes ${JSON.stringify(body)}, which the server refuses`);
  }
});

test('402 and 429 as documented', async () => {
  const bob = newUser();
  const e402 = await check('POST', '/v1/generations', '/v1/generations', { tok: bob.token, body: { kind: 'pose', prompt: 'p', count: 4, poses: [{ preset: 'standing-arms-crossed' }] } });
  assert.equal(e402.error.code, 'insufficient_credits');
  const carol = newUser();
  // More at once than the burst allows (one request each could be outpaced by the refill).
  const answers = await Promise.all(Array.from({ length: rateBurst + 8 }, () =>
    call('POST', '/v1/generations', { tok: carol.token, body: { kind: 'avatar', prompt: 'p', deadline_s: 1 } })));
  const bodies = [];
  for (const res of answers) bodies.push([res, await c.assertResponse('POST', '/v1/generations', res)]);
  const limited = bodies.filter(([res]) => res.status === 429);
  assert.ok(limited.length > 0, `no 429 among ${answers.map((r) => r.status)}`);
  for (const [res, body] of limited) {
    assert.equal(body.error.code, 'rate_limited');
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
  }
});

test('without FARM_DEMO the document is served and the demo page is not', async (t) => {
  const { spawn } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const env = { ...process.env, FARM_DEMO: '0', FARM_API_PORT: String(port), FARM_API_PROCESSES: '1', FARM_LOG_LEVEL: 'warn' };
  for (const k of Object.keys(env)) if (k.startsWith('FARM_TEST_')) delete env[k];
  const api = spawn(process.env.FARM_TEST_API_BIN, [], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  t.after(() => api.kill('SIGTERM'));
  const base = `http://127.0.0.1:${port}`;
  let ready = false;
  for (let i = 0; i < 300 && !ready; i++) {
    ready = await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false);
    if (!ready) await sleep(100);
  }
  assert.ok(ready, 'the second farm-api became ready');
  const doc = await fetch(`${base}/v1/openapi.json`);
  assert.equal(doc.status, 200);
  for (const path of ['/', '/app.js', '/client.js']) {
    const res = await fetch(base + path);
    assert.equal(res.status, 404, path);
    assert.equal((await res.json()).error.code, 'not_found');
  }
});
