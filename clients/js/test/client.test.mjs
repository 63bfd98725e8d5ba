// clients/js against a live farm (ctest frontend_client, under
// tests/frontend/with-farm): every call, a watch across a connection cut
// mid-stream, and the API's errors as ApiError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, ApiError, TERMINAL_EVENTS } from '../index.js';
import { apiUrl, newUser, rateBurst } from '../../../tests/frontend/lib/farm.mjs';

const rejectsWith = async (promise, status, code) => {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ApiError, `not an ApiError: ${err}`);
    assert.equal(err.status, status, `${err.code}: ${err.message}`);
    assert.equal(err.code, code);
    return true;
  });
};

// A TCP proxy in front of the api whose connections can all be cut at once;
// it keeps every request's head so a test can see the reconnects. With
// `loseAnswer` (a RegExp on the request line), the first request matching it
// reaches the api, and the connection is cut as its answer comes back.
function startProxy(target, { loseAnswer } = {}) {
  let toLose = loseAnswer ?? null;
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const heads = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    // Every request head on the connection (keep-alive carries several).
    let seen = '';
    let mine = 0;
    let losing = false;
    client.on('data', (d) => {
      if (seen.length < (1 << 20)) seen += d.toString('latin1');
      const re = /(?:GET|POST|PUT|DELETE|OPTIONS) \S+ HTTP\/1\.[01]\r\n[\s\S]*?\r\n\r\n/g;
      const found = seen.match(re) ?? [];
      for (const h of found.slice(mine)) {
        heads.push(h.slice(0, -4));
        mine++;
        if (toLose && toLose.test(h.split('\r\n')[0])) {
          toLose = null;
          losing = true;
        }
      }
    });
    client.pipe(upstream);
    upstream.on('data', (d) => {
      if (losing) return drop();
      client.write(d);
    });
    upstream.on('end', () => client.end());
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        heads,
        cut() {
          for (const s of sockets) s.destroy();
          sockets.clear();
        },
        close: () => new Promise((r) => server.close(r)),
      });
    });
  });
}

async function posePng(farm) {
  const presets = await farm.presets();
  const res = await fetch(apiUrl + presets.poses[0].map_url);
  assert.equal(res.status, 200);
  return new Uint8Array(await res.arrayBuffer());
}

test('every call of the client against the farm', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: `${apiUrl}/`, token: user.token });

  assert.deepEqual(await farm.credits(), { balance: 100, held: 0, available: 100 });
  const presets = await farm.presets();
  assert.ok(presets.styles.length > 0 && presets.poses.length > 0);

  const png = await posePng(farm);
  const up = await farm.upload(png);
  assert.equal(up.format, 'png');
  const upBlob = await farm.upload(new Blob([png], { type: 'image/png' }));
  assert.notEqual(upBlob.id, up.id);
  await assert.rejects(farm.upload(new TextEncoder().encode('not an image')), TypeError);

  const params = { kind: 'avatar', prompt: 'a watercolor portrait of a red-haired astronaut', style: presets.styles[0].name, seed: 5 };
  const g = await farm.createGeneration(params);
  assert.equal(g.status, 'queued');
  assert.equal(g.cost, 10);
  // The same key is the same generation, held once.
  const key = 'client-test-key';
  const first = await farm.createGeneration({ ...params, seed: 6 }, { idempotencyKey: key });
  const again = await farm.createGeneration({ ...params, seed: 6 }, { idempotencyKey: key });
  assert.equal(again.id, first.id);
  assert.notEqual(first.id, g.id);

  const events = [];
  for await (const ev of farm.watch(g.id)) events.push(ev);
  const ids = events.map((e) => Number(e.id));
  assert.deepEqual(ids, ids.map((_, i) => i + 1), 'ids count up from 1, each once');
  assert.equal(events.at(-1).type, 'succeeded');
  assert.equal(events.at(-1).data.id, g.id);
  assert.ok(events.some((e) => e.type === 'image' && e.data.outputs?.length));

  // Resuming after an id yields only what came after it.
  const tail = [];
  for await (const ev of farm.watch(g.id, { lastEventId: String(ids.at(-3)) })) tail.push(ev.id);
  assert.deepEqual(tail, ids.slice(-2).map(String));

  const got = await farm.getGeneration(g.id);
  assert.equal(got.status, 'succeeded');
  assert.ok(got.outputs.every((o) => o.url));

  const page = await farm.list({ limit: 2 });
  assert.equal(page.items.length, 2);
  const older = await farm.list({ limit: 2, cursor: page.next_cursor, kind: 'avatar' });
  assert.ok(!older.items.some((i) => page.items.some((p) => p.id === i.id)));
  assert.ok((await farm.list({ status: 'succeeded' })).items.some((i) => i.id === g.id));

  // A long one, canceled.
  const long = await farm.createGeneration({ ...params, count: 4 });
  const canceled = await farm.cancel(long.id);
  assert.equal(canceled.id, long.id);
  let end;
  for await (const ev of farm.watch(long.id)) end = ev;
  assert.equal(end.type, 'canceled');
  await rejectsWith(farm.cancel(g.id), 409, 'not_cancelable');

  const ledger = await farm.ledger({ limit: 100 });
  const kinds = ledger.items.map((e) => `${e.kind}:${e.generation_id ?? ''}`);
  assert.ok(kinds.includes(`hold:${g.id}`) && kinds.includes(`capture:${g.id}`));
  assert.ok(kinds.includes(`release:${long.id}`));
  assert.equal(ledger.items.filter((e) => e.kind === 'hold' && e.generation_id === first.id).length, 1);
  const firstEntry = await farm.ledger({ limit: 1 });
  assert.equal(firstEntry.items.length, 1);

  // The user stream replays this user's events; break ends it.
  const seen = new Set();
  for await (const ev of farm.watchAll()) {
    assert.ok(!seen.has(ev.id));
    seen.add(ev.id);
    if (TERMINAL_EVENTS.includes(ev.type) && ev.data.id === long.id) break;
  }
  assert.ok(seen.size >= events.length);
});

test('watch across a connection cut mid-stream yields each event once', async () => {
  const user = newUser();
  const proxy = await startProxy(apiUrl);
  try {
    const farm = new Client({ baseUrl: proxy.url, token: user.token, reconnectDelayMs: 100 });
    const g = await farm.createGeneration({ kind: 'avatar', prompt: 'a portrait', count: 4 });
    const events = [];
    let cuts = 0;
    for await (const ev of farm.watch(g.id)) {
      events.push(ev);
      if (ev.type === 'image' && cuts === 0) {
        cuts++;
        proxy.cut();
      }
    }
    assert.equal(cuts, 1, 'the stream was cut while the generation ran');
    const ids = events.map((e) => Number(e.id));
    assert.deepEqual(ids, ids.map((_, i) => i + 1), `every event once, in order: ${ids}`);
    assert.equal(events.at(-1).type, 'succeeded');
    assert.equal(events.filter((e) => e.type === 'image').length, 4);
    const streams = proxy.heads.filter((h) => h.includes('/events'));
    assert.ok(streams.length >= 2, 'the client reconnected');
    assert.ok(streams.slice(1).every((h) => /\r\nLast-Event-ID: \d+/i.test(h)), 'and resumed by Last-Event-ID');
  } finally {
    proxy.cut();
    await proxy.close();
  }
});

test('a 402 and a 429 surface as ApiError with their codes', async () => {
  const bob = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: bob.token });
  await rejectsWith(farm.createGeneration({ kind: 'pose', prompt: 'p', count: 4, poses: [{ preset: 'standing-arms-crossed' }] }), 402, 'insufficient_credits');
  // More at once than the burst allows (one request each could be outpaced by the refill).
  const settled = await Promise.allSettled(Array.from({ length: rateBurst + 8 }, () =>
    farm.createGeneration({ kind: 'avatar', prompt: 'p', deadline_s: 1, count: 1 })));
  const err = settled.find((s) => s.status === 'rejected' && s.reason?.status === 429)?.reason;
  assert.ok(err, `no 429 among ${settled.map((s) => s.reason?.status ?? 202)}`);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 429);
  assert.equal(err.code, 'rate_limited');
  assert.ok(err.retryAfter >= 1, `retryAfter ${err.retryAfter}`);
  assert.ok(err.requestId);
});

test('remove(): a finished generation is gone (404, not listed, its file too); its ledger stays', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: user.token });
  // Four full-size images: still queued or running when the delete arrives.
  const g = await farm.createGeneration({ kind: 'avatar', prompt: 'to be removed', count: 4, seed: 11 });
  await rejectsWith(farm.remove(g.id), 409, 'not_deletable');
  let end;
  for await (const ev of farm.watch(g.id)) end = ev;
  assert.equal(end.type, 'succeeded');
  const done = await farm.getGeneration(g.id);
  const file = apiUrl + done.outputs[0].url;
  assert.equal((await fetch(file)).status, 200);

  assert.equal(await farm.remove(g.id), null);
  await rejectsWith(farm.getGeneration(g.id), 404, 'not_found');
  assert.ok(!(await farm.list({ limit: 100 })).items.some((i) => i.id === g.id));
  assert.equal((await fetch(file)).status, 404, 'the signed URL of a deleted output serves nothing');
  await rejectsWith(farm.remove(g.id), 404, 'not_found');
  await rejectsWith(new Client({ baseUrl: apiUrl, token: newUser().token }).remove(g.id), 404, 'not_found');
  const ledger = await farm.ledger({ limit: 100 });
  assert.equal(ledger.items.filter((e) => e.generation_id === g.id && e.kind === 'capture').length, 4);
});

test('other errors: their status, code and field', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: user.token });
  await assert.rejects(farm.createGeneration({ kind: 'avatar', prompt: 'p', width: 1000 }), (e) =>
    e instanceof ApiError && e.status === 400 && e.code === 'invalid_request' && e.field === 'width');
  await rejectsWith(farm.getGeneration('00000000-0000-4000-8000-00000000beef'), 404, 'not_found');
  await rejectsWith(new Client({ baseUrl: apiUrl, token: 'nope' }).credits(), 401, 'unauthorized');
  const it = new Client({ baseUrl: apiUrl, token: 'nope' }).watch('00000000-0000-4000-8000-00000000beef');
  await rejectsWith(it.next(), 401, 'unauthorized');
  await rejectsWith(new Client({ baseUrl: 'http://127.0.0.1:1', token: 'x' }).credits(), 0, 'network_error');
});

test('a create whose answer was lost is sent again with its key: one generation, held once', async () => {
  const user = newUser();
  const proxy = await startProxy(apiUrl, { loseAnswer: /^POST \/v1\/generations / });
  try {
    const retries = [];
    const farm = new Client({ baseUrl: proxy.url, token: user.token, onRetry: (r) => retries.push(r) });
    const g = await farm.createGeneration({ kind: 'avatar', prompt: 'an answer lost on the way', seed: 21 });
    assert.equal(retries.length, 1, 'one resend');
    assert.equal(retries[0].error.code, 'network_error');
    const posts = proxy.heads.filter((h) => h.startsWith('POST /v1/generations '));
    assert.equal(posts.length, 2, 'the farm was asked twice');
    const keys = posts.map((h) => /\r\nIdempotency-Key: ([^\r]+)/i.exec(h)?.[1]);
    assert.ok(keys[0], 'the client made a key');
    assert.equal(keys[1], keys[0], 'and sent the same one again');
    const mine = (await farm.list({ limit: 100 })).items;
    assert.deepEqual(mine.map((i) => i.id), [g.id], 'one generation');
    const holds = (await farm.ledger({ limit: 100 })).items.filter((e) => e.kind === 'hold');
    assert.equal(holds.length, 1, 'held once');
    // Without retries left, the failure carries the key for the caller's own retry.
    const once = new Client({ baseUrl: 'http://127.0.0.1:1', token: user.token, createRetries: 0 });
    await assert.rejects(once.createGeneration({ kind: 'avatar', prompt: 'p' }, { idempotencyKey: 'k-9' }),
      (e) => e instanceof ApiError && e.status === 0 && e.idempotencyKey === 'k-9');
  } finally {
    proxy.cut();
    await proxy.close();
  }
});

test('a watch resumed at its terminal event ends; one resumed before it gets it', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: user.token });
  const g = await farm.createGeneration({ kind: 'avatar', prompt: 'watched to the end' });
  const events = [];
  for await (const ev of farm.watch(g.id)) events.push(ev);
  const end = events.at(-1);
  assert.ok(TERMINAL_EVENTS.includes(end.type));
  const again = [];
  for await (const ev of farm.watch(g.id, { lastEventId: end.id, signal: AbortSignal.timeout(8000) })) again.push(ev);
  assert.deepEqual(again, [], 'nothing after the end, and the watch ended');
  const before = [];
  for await (const ev of farm.watch(g.id, { lastEventId: events.at(-2).id, signal: AbortSignal.timeout(8000) })) before.push(ev);
  assert.deepEqual(before.map((e) => [e.id, e.type]), [[end.id, end.type]]);
});

test('a stream refused for the per-user cap (429) is waited out, then follows', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: user.token });
  const g = await farm.createGeneration({ kind: 'avatar', prompt: 'one stream too many' });
  const holders = [];
  const opened = [];
  for (let i = 0; i < 20; i++) {
    const ctl = new AbortController();
    const it = farm.watchAll({ signal: ctl.signal });
    // The first event (or the wait for one) means the server counts the stream.
    opened.push(it.next().catch(() => {}));
    holders.push({ ctl, it });
  }
  await Promise.race([Promise.all(opened), new Promise((r) => setTimeout(r, 2000))]);
  const retries = [];
  const late = new Client({ baseUrl: apiUrl, token: user.token, onRetry: (r) => retries.push(r) });
  const got = [];
  const watching = (async () => {
    for await (const ev of late.watch(g.id, { signal: AbortSignal.timeout(30000) })) got.push(ev.type);
  })();
  const t0 = Date.now();
  while (retries.length === 0 && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 50));
  for (const h of holders) h.ctl.abort();
  assert.equal(retries[0]?.error.status, 429, 'the cap refused it');
  assert.equal(retries[0].error.code, 'rate_limited');
  assert.ok(retries[0].delayMs >= 5000, `waited as Retry-After says: ${retries[0].delayMs} ms`);
  await watching;
  assert.ok(TERMINAL_EVENTS.includes(got.at(-1)), `then followed to the end: ${got}`);
});

test('upload() sends the type the bytes show, whatever the Blob says', async () => {
  const user = newUser();
  const farm = new Client({ baseUrl: apiUrl, token: user.token });
  const png = await posePng(farm);
  const up = await farm.upload(new Blob([png], { type: 'application/octet-stream' }));
  assert.equal(up.format, 'png');
  const listed = await farm.uploads({ limit: 10 });
  assert.deepEqual(listed.items.map((i) => i.id), [up.id]);
  assert.ok(listed.items[0].created_at);
  assert.equal(await farm.removeUpload(up.id), null);
  assert.deepEqual((await farm.uploads()).items, []);
});

// The stream parser and the resume rules on answers no live farm gives on cue:
// a fetch that answers event-stream bodies in the chunks given.
function scriptedFetch(...bodies) {
  const asked = [];
  const fetchFn = async (url, init) => {
    asked.push(init.headers['Last-Event-ID'] ?? null);
    const chunks = bodies.shift();
    if (!chunks) throw new TypeError('no more answers');
    const enc = new TextEncoder();
    const body = new ReadableStream({
      start(c) {
        for (const ch of chunks) c.enqueue(enc.encode(ch));
        c.close();
      },
    });
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  };
  return { fetchFn, asked };
}

test('a CRLF split between two reads ends one line, not two', async () => {
  const { fetchFn } = scriptedFetch(['id: 1\r\nevent: succeeded\r', '\ndata: {"id":"g"}\r\n\r\n']);
  const farm = new Client({ fetch: fetchFn });
  const got = [];
  for await (const ev of farm.watch('g', { signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['1', 'succeeded']]);
});

test('events at or before the cursor are skipped, but a terminal one under an old id ends the watch', async () => {
  const { fetchFn, asked } = scriptedFetch([
    'id: 3\nevent: progress\ndata: {}\n\n',
    'id: 4\nevent: image\ndata: {}\n\n',
    'id: 5\nevent: progress\ndata: {}\n\n',
    'id: 2\nevent: succeeded\ndata: {"id":"g"}\n\n',
  ]);
  const farm = new Client({ fetch: fetchFn });
  const got = [];
  for await (const ev of farm.watch('g', { lastEventId: '4', signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['5', 'progress'], ['2', 'succeeded']]);
  assert.deepEqual(asked, ['4']);
});

// A fetch that answers from a list, in order: event-stream bodies for the
// events URL, {status, json} for the generation's GET.
function routedFetch(answers) {
  const enc = new TextEncoder();
  return async (url) => {
    const a = answers.shift();
    if (!a) throw new TypeError('no more answers');
    if (url.endsWith('/events')) {
      assert.ok(a.sse !== undefined, `an events request met ${JSON.stringify(a)}`);
      const body = new ReadableStream({
        start(c) {
          c.enqueue(enc.encode(a.sse));
          c.close();
        },
      });
      return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    }
    assert.ok(a.json !== undefined, `a GET met ${JSON.stringify(a)}`);
    return new Response(JSON.stringify(a.json), { status: a.status ?? 200, headers: { 'Content-Type': 'application/json', ...(a.headers ?? {}) } });
  };
}

test('a watch resumed by the caller yields the end it never saw, whichever connection saw the rest', async () => {
  const farm = new Client({
    reconnectDelayMs: 10,
    fetch: routedFetch([
      { sse: 'id: 4\nevent: progress\ndata: {}\n\n' },
      { json: { id: 'g', status: 'running' } },
      { sse: '' },
      { json: { id: 'g', status: 'succeeded' } },
    ]),
  });
  const got = [];
  for await (const ev of farm.watch('g', { lastEventId: '3', signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['4', 'progress'], ['4', 'succeeded']]);
});

test('a resumed watch whose stream ends empty before Postgres has the end still yields it', async () => {
  // The queue expired the job first: the farm ended the stream with nothing
  // (Postgres had no final status yet), and GET then says expired.
  const farm = new Client({
    reconnectDelayMs: 10,
    fetch: routedFetch([
      { sse: '' },
      { json: { id: 'g', status: 'expired' } },
      { sse: 'id: 2\nevent: expired\ndata: {"id":"g","status":"expired"}\n\n' },
    ]),
  });
  const got = [];
  for await (const ev of farm.watch('g', { lastEventId: '1', signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type, ev.data.status]);
  assert.deepEqual(got, [['2', 'expired', 'expired']]);
});

test('a watch resumed at its terminal event asks once more, then ends without yielding', async () => {
  const answers = [
    { sse: '' },
    { json: { id: 'g', status: 'succeeded' } },
    { sse: '' },
    { json: { id: 'g', status: 'succeeded' } },
  ];
  const farm = new Client({ reconnectDelayMs: 10, fetch: routedFetch(answers) });
  const got = [];
  for await (const ev of farm.watch('g', { lastEventId: '9', signal: AbortSignal.timeout(5000) })) got.push(ev);
  assert.deepEqual(got, []);
  assert.equal(answers.length, 0);
});

test('a 502 or 504 from a proxy in front of a restarting api is waited out', async () => {
  const enc = new TextEncoder();
  const answers = [
    new Response('<html>502 Bad Gateway</html>', { status: 502, headers: { 'Content-Type': 'text/html' } }),
    new Response('<html>504 Gateway Timeout</html>', { status: 504, headers: { 'Content-Type': 'text/html' } }),
    new Response(new ReadableStream({ start(c) { c.enqueue(enc.encode('id: 1\nevent: succeeded\ndata: {"id":"g"}\n\n')); c.close(); } }),
      { status: 200, headers: { 'Content-Type': 'text/event-stream' } }),
  ];
  const retries = [];
  const farm = new Client({ reconnectDelayMs: 10, onRetry: (r) => retries.push(r.error.status), fetch: async () => answers.shift() });
  const got = [];
  for await (const ev of farm.watch('g', { signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['1', 'succeeded']]);
  assert.deepEqual(retries, [502, 504]);
});

test('streams that end before any event back off, with jitter, until one delivers', async () => {
  const running = { json: { id: 'g', status: 'running' } };
  const retries = [];
  const farm = new Client({
    reconnectDelayMs: 40,
    onRetry: (r) => retries.push([r.error.code, r.delayMs]),
    fetch: routedFetch([
      { sse: '' }, running, { sse: '' }, running, { sse: '' }, running,
      { sse: 'id: 1\nevent: succeeded\ndata: {"id":"g"}\n\n' },
    ]),
  });
  const got = [];
  for await (const ev of farm.watch('g', { signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['1', 'succeeded']]);
  assert.deepEqual(retries.map(([code]) => code), ['network_error', 'network_error', 'network_error']);
  const [a, b, c] = retries.map(([, ms]) => ms);
  assert.ok(a >= 20 && a <= 40 && b >= 40 && b <= 80 && c >= 80 && c <= 160, `delays ${a}, ${b}, ${c}: doubling, each in [d/2, d]`);
});

test('a quiet stream that stayed open and then ended is no failure', async () => {
  // A user stream with nothing to say, ended after a while by a proxy's idle
  // timeout: the kit reconnects at the base delay each time, and tells no
  // one of a failure.
  const enc = new TextEncoder();
  let n = 0;
  const retries = [];
  const farm = new Client({
    reconnectDelayMs: 10,
    maxReconnectDelayMs: 50,
    onRetry: (r) => retries.push(r.delayMs),
    fetch: async () => {
      n++;
      const body = new ReadableStream({
        start(c) {
          if (n === 4) c.enqueue(enc.encode('id: 1-0\nevent: queued\ndata: {"id":"g"}\n\n'));
          setTimeout(() => {
            try {
              c.close();
            } catch {
              // the watch ended first and cancelled this body
            }
          }, 80);
        },
      });
      return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    },
  });
  const got = [];
  for await (const ev of farm.watchAll({ signal: AbortSignal.timeout(5000) })) {
    got.push(ev.type);
    break;
  }
  assert.deepEqual(got, ['queued']);
  assert.equal(n, 4);
  assert.deepEqual(retries, []);
});

test('a watch waits out a 503 from the GET after a stream that ended whole', async () => {
  const retries = [];
  const farm = new Client({
    reconnectDelayMs: 10,
    onRetry: (r) => retries.push(r.error.status),
    fetch: routedFetch([
      { sse: 'id: 1\nevent: progress\ndata: {}\n\n' },
      { status: 503, json: { error: { code: 'unavailable', message: 'restarting', field: null } }, headers: { 'Retry-After': '0' } },
      { sse: 'id: 2\nevent: succeeded\ndata: {"id":"g"}\n\n' },
    ]),
  });
  const got = [];
  for await (const ev of farm.watch('g', { signal: AbortSignal.timeout(5000) })) got.push([ev.id, ev.type]);
  assert.deepEqual(got, [['1', 'progress'], ['2', 'succeeded']]);
  assert.deepEqual(retries, [503]);
});
