// tests/deploy/scaling-signal.mjs SOURCE_DIR : the number KEDA reads.
//
// Runs under tests/fixture/with-servers (Redis, Postgres). Starts two
// farm-api processes (as two api pods), farm-fake-provider, and a real
// Prometheus scraping both apis' /metrics with the namespace label the
// overlays' queries select on. Then, with the exact queries of the
// ScaledObject of `kubectl kustomize deploy/kubernetes/overlays/prod` (and
// dev), asked of Prometheus the way KEDA's prometheus scaler asks
// (/api/v1/query):
//   - 5 generations running (a worker holding them on a slow provider), 10
//     delayed (handed back by a stopped worker, an hour of backoff) and 500
//     queued: trigger "ready" reads 500 (not 515, not 1000 for two api
//     pods), trigger "held" reads 15;
//   - the 15 canceled and two workers started on a fast provider: "ready"
//     falls, never rising, through values between 500 and 0, to 0 as the
//     500 finish (all succeeded), and "held" ends at 0 too.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { parseAllDocuments } from "yaml";

const src = process.argv[2];
// kustomize: Debian has no kustomize package; kubectl carries it.
try {
  execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
} catch {
  console.error("FAIL: kubectl not found: it renders the overlays (kubectl kustomize); install kubectl");
  process.exit(1);
}
const env = process.env;
const tmp = env.FARM_TEST_TMPDIR || mkdtempSync(join(tmpdir(), "genfarm-scaling-"));
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (msg) => console.log(`scaling: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  cleanup();
  process.exit(1);
}
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
}
process.on("exit", cleanup);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}
async function http(method, url, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method, headers, body: body && JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text };
}
async function waitFor(what, secs, fn) {
  for (let i = 0; i < secs * 4; i++) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    await sleep(250);
  }
  fail(`${what} within ${secs} s`);
}
function start(name, bin, args, extraEnv) {
  const c = spawn(bin, args, {
    env: { ...env, ...extraEnv },
    cwd: tmp,
    stdio: ["ignore", "ignore", "pipe"],
  });
  c.logs = "";
  c.stderr.on("data", (d) => {
    c.logs = (c.logs + d).slice(-4000);
  });
  c.name = name;
  children.push(c);
  return c;
}
async function stop(c) {
  if (c.exitCode !== null) return;
  const gone = new Promise((r) => c.on("exit", r));
  c.kill("SIGTERM");
  await Promise.race([gone, sleep(20000)]);
  if (c.exitCode === null) fail(`${c.name} did not stop on SIGTERM`);
}

// --- the queries, from the rendered overlays ----------------------------------

function scaledObject(overlay) {
  const dir = mkdtempSync(join(tmpdir(), "genfarm-k8s-"));
  try {
    cpSync(join(src, "deploy/kubernetes"), dir, { recursive: true });
    if (overlay === "prod") copyFileSync(join(dir, "overlays/prod/secrets.env.example"), join(dir, "overlays/prod/secrets.env"));
    const out = execFileSync("kubectl", ["kustomize", join(dir, "overlays", overlay)], { encoding: "utf8" });
    return parseAllDocuments(out).map((d) => d.toJS()).find((o) => o?.kind === "ScaledObject");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const so = { prod: scaledObject("prod"), dev: scaledObject("dev") };
const query = (overlay, trigger) => so[overlay].spec.triggers.find((t) => t.name === trigger).metadata.query;
log(`ready query (prod): ${query("prod", "ready")}`);
log(`held query (prod): ${query("prod", "held")}`);

// --- the farm -----------------------------------------------------------------------

const secrets = {
  FARM_JWT_SECRET: "scaling-signal-jwt-secret-0123456789abcdef",
  FARM_FILE_SECRET: "scaling-signal-file-secret-0123456789abcde",
  FARM_WEBHOOK_SECRET: "scaling-signal-webhook-secret-0123456789ab",
};
const farmEnv = {
  ...secrets,
  FARM_LOG_LEVEL: "warn",
  FARM_PRESETS_DIR: join(src, "imaging/presets"),
  FARM_STORAGE_DIR: join(tmp, "storage"),
  FARM_QUEUE_TIERS: "pro:4:100000,free:1:100000",
  FARM_RATE_LIMIT_PER_MIN: "1000000",
  FARM_RATE_LIMIT_BURST: "1000000",
  // one user reads its 500 generations: reads are not what is measured
  FARM_RATE_LIMITS: "reads=1000000/1000000",
  FARM_WELCOME_CREDITS: "1000000",
  // A handed-back job waits between half an hour and an hour (min of the
  // hand-back cap and the base, then [w/2, w)): and since only a claim moves a
  // due one back to ready, none does here while no worker has a free slot.
  FARM_QUEUE_RETRY_BASE_MS: "3600000",
  FARM_QUEUE_HANDBACK_CAP_MS: "3600000",
};
mkdirSync(farmEnv.FARM_STORAGE_DIR, { recursive: true });

const fakePortFile = join(tmp, "fake.port");
start("fake", env.FARM_TEST_FAKE_BIN, ["--port-file", fakePortFile, "--latency-ms", "600000"], {});
const fakeUrl = await waitFor("the fake provider's port file", 20, async () => {
  const p = readFileSync(fakePortFile, "utf8").trim();
  return p && `http://127.0.0.1:${p}`;
});

const apis = [];
for (const n of [1, 2]) {
  const port = await freePort();
  start(`api-${n}`, env.FARM_TEST_API_BIN, [], { ...farmEnv, FARM_API_HOST: "127.0.0.1", FARM_API_PORT: String(port), FARM_API_PROCESSES: "1" });
  apis.push(`http://127.0.0.1:${port}`);
}
for (const a of apis) await waitFor(`${a}/readyz 200`, 30, async () => (await http("GET", `${a}/readyz`)).status === 200);
const api = apis[0];

const cli = (args) => execFileSync(env.FARM_TEST_CLI, args, { env: { ...env, ...farmEnv }, encoding: "utf8" }).trim();
const token = cli(["token", "--sub", "00000000-0000-4000-8000-00000000005c", "--plan", "pro", "--ttl", "3600"]);
const admin = cli(["token", "--sub", "00000000-0000-4000-8000-0000000000ad", "--role", "admin", "--ttl", "3600"]);

let workerN = 0;
async function startWorker(concurrency, more = {}) {
  const port = await freePort();
  const w = start(`worker-${++workerN}`, env.FARM_TEST_WORKER_BIN, [], {
    ...farmEnv,
    FARM_PROVIDER: "fake",
    FARM_PROVIDER_FALLBACK: "hf",
    FARM_FAKE_PROVIDER_URL: fakeUrl,
    FARM_WORKER_CONCURRENCY: String(concurrency),
    FARM_WORKER_METRICS_HOST: "127.0.0.1",
    FARM_WORKER_METRICS_PORT: String(port),
    ...more,
  });
  await waitFor(`${w.name} /healthz`, 30, async () => (await http("GET", `http://127.0.0.1:${port}/healthz`)).status === 200);
  return w;
}
async function create(n) {
  const ids = [];
  let next = 0;
  async function one() {
    while (next < n) {
      const i = next++;
      const r = await http("POST", `${api}/v1/generations`, { token, body: { kind: "avatar", prompt: `scaling signal ${i}`, width: 256, height: 256 } });
      if (r.status !== 202 && r.status !== 201) fail(`POST /v1/generations: ${r.status} ${r.text}`);
      ids.push(r.json.id);
    }
  }
  await Promise.all(Array.from({ length: 8 }, one));
  return ids;
}
async function stats() {
  const r = await http("GET", `${api}/v1/admin/stats`, { token: admin });
  if (r.status !== 200) fail(`/v1/admin/stats: ${r.status} ${r.text}`);
  const s = r.json;
  return { ready: Object.values(s.queued_by_tier).reduce((a, b) => a + b, 0), in_flight: s.in_flight, delayed: s.delayed };
}
const statsAre = (want) => async () => {
  const s = await stats();
  return s.ready === want.ready && s.in_flight === want.in_flight && s.delayed === want.delayed;
};

// --- Prometheus -------------------------------------------------------------------

const promPort = await freePort();
const promDir = join(tmp, "prometheus");
mkdirSync(promDir, { recursive: true });
const hostOf = (u) => u.replace("http://", "");
writeFileSync(
  join(promDir, "prometheus.yml"),
  `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  # Two api pods of the prod namespace: each reports the same farm-wide gauges.
  - job_name: genfarm-api
    static_configs:
      - targets: ["${hostOf(apis[0])}", "${hostOf(apis[1])}"]
        labels: {namespace: genfarm}
  - job_name: genfarm-dev-api
    static_configs:
      - targets: ["${hostOf(apis[0])}"]
        labels: {namespace: genfarm-dev}
`,
);
start("prometheus", "prometheus", [
  `--config.file=${join(promDir, "prometheus.yml")}`,
  `--storage.tsdb.path=${join(promDir, "data")}`,
  `--web.listen-address=127.0.0.1:${promPort}`,
  "--log.level=warn",
], {});
const prom = `http://127.0.0.1:${promPort}`;
await waitFor("Prometheus ready", 60, async () => (await http("GET", `${prom}/-/ready`)).status === 200);

// keda : the value of QUERY as KEDA's prometheus scaler reads it (one sample;
// undefined when there is none yet).
async function keda(q) {
  const r = await http("GET", `${prom}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r.status !== 200 || r.json?.status !== "success") fail(`Prometheus query ${q}: ${r.status} ${r.text}`);
  const res = r.json.data.result;
  if (res.length === 0) return undefined;
  if (res.length !== 1) fail(`query ${q} gave ${res.length} series, KEDA wants one`);
  return Number(res[0].value[1]);
}

// --- 5 running, 10 delayed, 500 queued ---------------------------------------------

const running = await create(5);
// Workers that hold a known count at once: up to their ceiling (not by measured capacity,
// which starts at the thread pool's width until a generation has finished).
const holder = await startWorker(5, { FARM_WORKER_CLAIM: "ceiling" });
await waitFor("5 generations running", 60, statsAre({ ready: 0, in_flight: 5, delayed: 0 }));
const delayed = await create(10);
const leaver = await startWorker(10, { FARM_WORKER_DRAIN_S: "0", FARM_WORKER_CLAIM: "ceiling" });
await waitFor("15 generations running", 60, statsAre({ ready: 0, in_flight: 15, delayed: 0 }));
await stop(leaver);
await waitFor("10 handed back to delayed", 60, statsAre({ ready: 0, in_flight: 5, delayed: 10 }));
const queued = await create(500);
await waitFor("500 ready, 5 running, 10 delayed in /v1/admin/stats", 60, statsAre({ ready: 500, in_flight: 5, delayed: 10 }));
log("the queue holds 500 ready, 5 running, 10 delayed");

let seen = [];
const ready500 = await waitFor("the ready query at 500", 90, async () => {
  const v = await keda(query("prod", "ready"));
  if (v !== undefined) seen.push(v);
  return v === 500;
});
if (seen.some((v) => v > 500)) fail(`the ready query read more than 500: ${seen}`);
const held = await keda(query("prod", "held"));
if (held !== 15) fail(`the held query reads ${held}, want 15 (5 running + 10 delayed)`);
await waitFor("dev's ready query at 500", 30, async () => (await keda(query("dev", "ready"))) === 500);
log(`KEDA reads ready=${ready500 && 500} (prod and dev), held=${held}`);

// --- they finish: the signal falls to 0 ------------------------------------------

// The provider is fast from here on, before the cancels: the holder fills its freed slots
// from the 500 at once, and a call it sent at the old latency would hold a job 300 s.
const cfg = await http("POST", `${fakeUrl}/__fake/config`, { body: { latency_ms: 20 } });
if (cfg.status !== 200) fail(`fake config: ${cfg.status} ${cfg.text}`);
for (const id of [...running, ...delayed]) {
  const r = await http("POST", `${api}/v1/generations/${id}/cancel`, { token });
  if (r.status !== 202) fail(`cancel ${id}: ${r.status} ${r.text}`);
}
await startWorker(32);
await startWorker(32);
const trace = [];
// The holder's 5 calls are aborted by their cancel (the fake takes 600 s each).
await waitFor("the ready and held queries at 0", 120, async () => {
  const r = await keda(query("prod", "ready"));
  const h = await keda(query("prod", "held"));
  if (trace.at(-1) !== r) trace.push(r);
  return r === 0 && h === 0;
});
log(`ready read as the jobs finished: ${trace.join(" ")}`);
for (let i = 1; i < trace.length; i++) if (trace[i] > trace[i - 1]) fail(`the ready signal rose: ${trace}`);
if (!trace.some((v) => v > 0 && v < 500)) fail(`the ready signal jumped from 500 to 0 without falling through: ${trace}`);

let ok = 0;
for (const id of queued) {
  const r = await http("GET", `${api}/v1/generations/${id}`, { token });
  if (r.json?.status === "succeeded") ok++;
}
if (ok !== 500) fail(`${ok} of the 500 generations succeeded`);
log("all 500 succeeded; KEDA's numbers are back to 0");

await stop(holder);
for (const c of children) if (c.exitCode === null && c !== holder) await stop(c);
console.log("scaling-signal: passed");
