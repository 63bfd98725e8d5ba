// tests/deploy/mc-driver.mjs API TOKEN IDS_FILE MODE N : the client side of
// tests/deploy/multi-container.sh, against a farm-api container.
//   create N     POST N avatar generations (256x256, one image), ids to IDS_FILE;
//                a 503 is retried after Retry-After with the same Idempotency-Key
//   wait-done N  wait (10 min at most) until N of them have ended
//   check N      all N succeeded; every output downloads through the api,
//                with the advertised size and sha256, as a real image
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const [api, token, idsFile, mode, nArg] = process.argv.slice(2);
const n = Number(nArg);
const auth = { Authorization: `Bearer ${token}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
async function pool(items, width, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}
async function getGen(id) {
  const r = await fetch(`${api}/v1/generations/${id}`, { headers: auth, signal: AbortSignal.timeout(10000) });
  if (r.status !== 200) fail(`GET /v1/generations/${id}: ${r.status} ${await r.text()}`);
  return r.json();
}
const ended = new Set(["succeeded", "partial", "failed", "canceled", "expired"]);

if (mode === "create") {
  // As a client should: a 503 (nothing was charged) is retried after its
  // Retry-After with the same Idempotency-Key, so a retry never holds twice.
  const ids = [];
  let retried = 0;
  await pool([...Array(n).keys()], 8, async (i) => {
    const key = `mc-${process.pid}-${i}`;
    for (let attempt = 1; ; attempt++) {
      const r = await fetch(`${api}/v1/generations`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify({ kind: "avatar", prompt: `multi-container run ${i}`, width: 256, height: 256 }),
        signal: AbortSignal.timeout(10000),
      });
      const body = await r.text();
      if (r.status === 503 && attempt < 10) {
        retried++;
        await sleep(1000 * Math.min(Number(r.headers.get("retry-after")) || 1, 5));
        continue;
      }
      if (r.status !== 202) fail(`POST /v1/generations: ${r.status} ${body}`);
      ids.push(JSON.parse(body).id);
      break;
    }
  });
  if (new Set(ids).size !== n) fail(`${new Set(ids).size} distinct ids for ${n} generations`);
  writeFileSync(idsFile, ids.join("\n") + "\n");
  if (retried) console.log(`${retried} POSTs answered 503 and were retried`);
} else if (mode === "wait-done") {
  const ids = readFileSync(idsFile, "utf8").trim().split("\n");
  const done = new Set();
  const deadline = Date.now() + 600000;
  while (done.size < n) {
    if (Date.now() > deadline) fail(`only ${done.size} of ${n} generations ended within 10 minutes`);
    await pool(ids.filter((id) => !done.has(id)), 8, async (id) => {
      if (ended.has((await getGen(id)).status)) done.add(id);
    });
    if (done.size < n) await sleep(1000);
  }
} else if (mode === "check") {
  const ids = readFileSync(idsFile, "utf8").trim().split("\n");
  if (ids.length !== n) fail(`${ids.length} ids, want ${n}`);
  let files = 0, bytes = 0;
  const magic = { webp: (b) => b.subarray(0, 4).toString() === "RIFF" && b.subarray(8, 12).toString() === "WEBP", jpeg: (b) => b[0] === 0xff && b[1] === 0xd8, png: (b) => b.subarray(1, 4).toString() === "PNG" };
  await pool(ids, 8, async (id) => {
    const g = await getGen(id);
    if (g.status !== "succeeded") fail(`generation ${id} is ${g.status}: ${JSON.stringify(g.error)}`);
    if (!g.outputs.length) fail(`generation ${id} has no outputs`);
    for (const o of g.outputs) {
      const r = await fetch(new URL(o.url, api), { signal: AbortSignal.timeout(10000) });
      if (r.status !== 200) fail(`${o.url}: ${r.status}`);
      const b = Buffer.from(await r.arrayBuffer());
      if (b.length !== o.bytes) fail(`${o.url}: ${b.length} bytes, the generation says ${o.bytes}`);
      if (createHash("sha256").update(b).digest("hex") !== o.sha256) fail(`${o.url}: sha256 differs from the generation's`);
      const is = magic[o.format];
      if (!is || !is(b)) fail(`${o.url}: not a ${o.format} file`);
      files++;
      bytes += b.length;
    }
  });
  console.log(`multi-container: ${n} generations succeeded; ${files} files (${(bytes / 1e6).toFixed(1)} MB) downloaded through the api, sizes and sha256 as stated`);
} else {
  fail(`unknown mode ${mode}`);
}
