// tests/edge/refusal.mjs BASE TOKEN - what Node's own fetch (undici) reads
// when farm-api refuses an upload at its headers while the body is still
// being sent: the status and the JSON error of API.md, not a reset.
import assert from 'node:assert/strict';

const [base, token] = process.argv.slice(2);

async function upload(bytes, headers) {
  const res = await fetch(`${base}/v1/uploads`, {
    method: 'POST',
    headers: { 'Content-Type': 'image/png', ...headers },
    body: new Uint8Array(bytes),
  });
  return { status: res.status, body: await res.json() };
}

const big = await upload(11 * 1024 * 1024, { Authorization: `Bearer ${token}` });
assert.equal(big.status, 413);
assert.equal(big.body.error.code, 'payload_too_large');

const anon = await upload(10 * 1024 * 1024, {});
assert.equal(anon.status, 401);
assert.equal(anon.body.error.code, 'unauthorized');

console.log('fetch read 413 payload_too_large and 401 unauthorized');
