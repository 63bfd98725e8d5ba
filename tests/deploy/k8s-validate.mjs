// tests/deploy/k8s-validate.mjs SOURCE_DIR
//
// Builds every overlay of deploy/kubernetes with kustomize (`kubectl
// kustomize`), validates every object against the Kubernetes schemas and
// KEDA's CRD schema (kubernetes-models, @kubernetes-models/keda), then checks
// what matters to the farm:
//   - the objects each overlay must have are there, and every reference
//     (envFrom, scaleTargetRef, Service/PDB selectors) lands on an object;
//   - every FARM_* key of a ConfigMap or Secret is a row of core/config.c,
//     and `farm config` accepts their values;
//   - every probe of a farm container names a declared port, that port is
//     the one the ConfigMap gives the process, and the path answers 200 on a
//     real farm-api / farm-worker started here (with the fixture's Redis and
//     Postgres);
//   - grace periods exceed FARM_SHUTDOWN_S (+ preStop) and FARM_WORKER_DRAIN_S;
//   - the api's FARM_UPLOAD_MAX_INFLIGHT_BYTES is at most half its memory
//     limit, and farm-api and farm-worker, whose root is read-only, have an
//     emptyDir with a sizeLimit at /tmp;
//   - KEDA's target per worker is FARM_WORKER_CONCURRENCY, it scales to zero,
//     and has a cooldown.
// Prints one line per overlay and check; exits 1 on the first failure.

import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { parseAllDocuments } from "yaml";
import * as k8s from "kubernetes-models";
import * as keda from "@kubernetes-models/keda";

const src = process.argv[2];
if (!src) throw new Error("usage: k8s-validate.mjs SOURCE_DIR");
// kustomize: Debian has no kustomize package; kubectl carries it.
try {
  execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
} catch {
  console.error("FAIL: kubectl not found: it renders the overlays (kubectl kustomize); install kubectl");
  process.exit(1);
}

let failures = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    failures++;
  }
  return cond;
}

// --- the models: apiVersion + kind -> class ---------------------------------

const groups = {
  v1: k8s.v1,
  "apps/v1": k8s.apps.v1,
  "batch/v1": k8s.batch.v1,
  "policy/v1": k8s.policy.v1,
  "networking.k8s.io/v1": k8s.networkingK8sIo.v1,
  "autoscaling/v2": k8s.autoscaling.v2,
  "keda.sh/v1alpha1": keda.kedaSh.v1alpha1,
};
function modelOf(obj) {
  const g = groups[obj.apiVersion];
  const M = g && g[obj.kind];
  if (!M) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  return M;
}
function validate(obj) {
  const M = modelOf(obj);
  // kustomize folds long base64 values of a Secret's data over several
  // lines; the API server's decoder (Go's encoding/base64) skips the line
  // breaks, the schema's "byte" format does not: join them first.
  if (obj.kind === "Secret" && obj.data)
    obj = { ...obj, data: Object.fromEntries(Object.entries(obj.data).map(([k, v]) => [k, String(v).replace(/[\r\n]/g, "")])) };
  new M(obj).validate(); // throws with the schema errors
}

// The validator must refuse what is wrong, or its passes mean nothing.
for (const bad of [
  { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { template: {} } },
  { apiVersion: "v1", kind: "Service", metadata: { name: "x" }, spec: { ports: [{ port: "eighty" }] } },
  { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "x" }, spec: { triggers: [] } },
]) {
  let refused = false;
  try {
    validate(bad);
  } catch {
    refused = true;
  }
  check(refused, `the validator refuses a broken ${bad.kind}`);
}

// --- core/config.c's table --------------------------------------------------

const configC = readFileSync(join(src, "core/config.c"), "utf8");
const farmVars = new Map(); // name -> default
for (const m of configC.matchAll(/\{"(FARM_[A-Z0-9_]+)",\s*CFG_\w+,\s*OFF\(\w+\),\s*"([^"]*)"/g))
  farmVars.set(m[1], m[2]);
check(farmVars.size > 50, `core/config.c's table parsed (${farmVars.size} rows)`);

// --- real routes: a farm-api and a farm-worker, probed -----------------------

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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function status(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return r.status;
  } catch {
    return 0;
  }
}
async function startFarm(bin, env, healthUrl) {
  const child = spawn(bin, [], {
    env: { ...process.env, ...env },
    cwd: src,
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (let i = 0; i < 150; i++) {
    if ((await status(healthUrl)) === 200) return child;
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill("SIGKILL");
  throw new Error(`${bin} did not answer ${healthUrl}`);
}
async function stopFarm(child) {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.on("exit", r));
  child.kill("SIGTERM");
  await Promise.race([gone, sleep(15000)]);
  if (child.exitCode === null) child.kill("SIGKILL");
}

const secrets = {
  FARM_JWT_SECRET: "k8s-validate-jwt-secret-0123456789abcdef",
  FARM_FILE_SECRET: "k8s-validate-file-secret-0123456789abcdef",
  FARM_WEBHOOK_SECRET: "k8s-validate-webhook-secret-0123456789ab",
  FARM_PRESETS_DIR: join(src, "imaging/presets"),
  FARM_LOG_LEVEL: "warn",
};
const apiPort = await freePort();
const workerPort = await freePort();
const api = await startFarm(
  process.env.FARM_TEST_API_BIN,
  { ...secrets, FARM_API_HOST: "127.0.0.1", FARM_API_PORT: String(apiPort), FARM_API_PROCESSES: "1" },
  `http://127.0.0.1:${apiPort}/healthz`,
);
const worker = await startFarm(
  process.env.FARM_TEST_WORKER_BIN,
  { ...secrets, FARM_WORKER_METRICS_HOST: "127.0.0.1", FARM_WORKER_METRICS_PORT: String(workerPort), FARM_WORKER_CONCURRENCY: "0" },
  `http://127.0.0.1:${workerPort}/healthz`,
);
const live = { "farm-api": apiPort, "farm-worker": workerPort };
// An api on a database no `farm migrate` has reached (a new release's pod before
// its migrate Job): what its startup probe answers decides whether the rollout
// waits for the Job or replaces the old pods with ones that answer 503.
const unmigrated = `k8s_unmigrated_${process.pid}`;
const psql = (sql) => execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", process.env.FARM_DATABASE_URL, "-c", sql], { stdio: "ignore" });
psql(`CREATE DATABASE ${unmigrated}`);
const unmigratedPort = await freePort();
const apiUnmigrated = await startFarm(
  process.env.FARM_TEST_API_BIN,
  { ...secrets, FARM_API_HOST: "127.0.0.1", FARM_API_PORT: String(unmigratedPort), FARM_API_PROCESSES: "1", FARM_DATABASE_URL: process.env.FARM_DATABASE_URL.replace(/\/[^/?]*(\?|$)/, `/${unmigrated}$1`) },
  `http://127.0.0.1:${unmigratedPort}/healthz`,
);
// And an api whose Redis is away (nothing listens on its port): what its
// readiness probe answers is what every pod answers in a Redis outage.
const noRedisPort = await freePort();
const apiNoRedis = await startFarm(
  process.env.FARM_TEST_API_BIN,
  { ...secrets, FARM_API_HOST: "127.0.0.1", FARM_API_PORT: String(noRedisPort), FARM_API_PROCESSES: "1", FARM_REDIS_URL: `redis://127.0.0.1:${await freePort()}/0` },
  `http://127.0.0.1:${noRedisPort}/healthz`,
);

// --- each overlay --------------------------------------------------------------

function render(overlay) {
  const dir = mkdtempSync(join(tmpdir(), "genfarm-k8s-"));
  try {
    cpSync(join(src, "deploy/kubernetes"), dir, { recursive: true });
    if (overlay === "prod") copyFileSync(join(dir, "overlays/prod/secrets.env.example"), join(dir, "overlays/prod/secrets.env"));
    const out = execFileSync("kubectl", ["kustomize", join(dir, "overlays", overlay)], { encoding: "utf8" });
    return parseAllDocuments(out).map((d) => {
      if (d.errors.length) throw new Error(d.errors[0].message);
      return d.toJS();
    }).filter((o) => o);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A Kubernetes quantity of bytes ("256Mi", "1G", "512") as a number.
function bytesOf(q) {
  const m = /^([0-9.]+)([KMGT]i?)?$/.exec(String(q ?? ""));
  if (!m) return NaN;
  const unit = { K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[m[2]] ?? 1;
  return Number(m[1]) * unit;
}
const get = (objs, kind, name) => objs.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(name + "-")));
const podSpecOf = (o) => (o.kind === "Job" ? o.spec.template.spec : o.spec?.template?.spec);
const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);

const routeResults = new Map();
async function probeLive(binary, path) {
  const key = `${binary} ${path}`;
  if (!routeResults.has(key)) routeResults.set(key, await status(`http://127.0.0.1:${live[binary]}${path}`));
  return routeResults.get(key);
}

for (const overlay of ["dev", "prod"]) {
  const objs = render(overlay);
  console.log(`${overlay}: ${objs.length} objects from kustomize`);

  // 1. schemas
  let valid = 0;
  for (const o of objs) {
    try {
      validate(o);
      valid++;
    } catch (e) {
      check(false, `${overlay}: ${o.kind}/${o.metadata?.name} against its schema: ${e.message}`);
    }
  }
  console.log(`${overlay}: ${valid}/${objs.length} valid against the Kubernetes and KEDA schemas`);

  // 2. what must be there
  const must = [
    ["Deployment", "genfarm-api"], ["Service", "genfarm-api"], ["Deployment", "genfarm-worker"],
    ["Job", "genfarm-migrate"], ["ConfigMap", "genfarm-config"], ["Secret", "genfarm-secrets"],
    ["PodDisruptionBudget", "genfarm-api"], ["PodDisruptionBudget", "genfarm-worker"],
    ["NetworkPolicy", "genfarm-default-deny"], ["HorizontalPodAutoscaler", "genfarm-api"],
    ["ScaledObject", "genfarm-worker"], ["Namespace", overlay === "dev" ? "genfarm-dev" : "genfarm"],
  ];
  if (overlay === "dev") must.push(["StatefulSet", "redis"], ["StatefulSet", "postgres"], ["StatefulSet", "minio"]);
  for (const [kind, name] of must) check(get(objs, kind, name), `${overlay}: has ${kind} ${name}`);
  check(!objs.some((o) => o.kind === "Service" && o.metadata.name.startsWith("genfarm-worker")), `${overlay}: no Service for workers`);
  // Webhook receivers listen on any port (API.md takes any https URL): the
  // workers' egress to public addresses may not be limited to 443, while the
  // cluster's private ranges stay out.
  const publicAnyPort = objs.filter((o) => o.kind === "NetworkPolicy" &&
    o.spec.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "genfarm-worker" &&
    (o.spec.egress ?? []).some((e) => !e.ports && (e.to ?? []).some((t) => t.ipBlock?.cidr === "0.0.0.0/0" &&
      ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"].every((r) => t.ipBlock.except?.includes(r)))));
  check(publicAnyPort.length > 0, `${overlay}: workers reach public addresses on any port (webhooks), not the private ranges`);

  // 3. FARM_* keys and references
  const cm = get(objs, "ConfigMap", "genfarm-config");
  const conf = { ...cm.data };
  for (const o of objs.filter((o) => o.kind === "ConfigMap" || o.kind === "Secret")) {
    for (const k of Object.keys({ ...o.data, ...o.stringData })) {
      if (k.startsWith("FARM_")) check(farmVars.has(k), `${overlay}: ${o.kind} ${o.metadata.name} key ${k} is in core/config.c's table`);
    }
  }
  const setting = (k) => Number(conf[k] ?? farmVars.get(k));
  // The values too: `farm config` loads the overlay's ConfigMap and Secret
  // as a pod's envFrom would, and refuses a bad one naming it.
  // It runs from the source tree, where the image's working directory
  // (/opt/genfarm) has the same migrations/ and imaging/presets/.
  const secret = get(objs, "Secret", "genfarm-secrets");
  const podEnv = { ...conf };
  for (const [k, v] of Object.entries(secret.data || {})) podEnv[k] = Buffer.from(String(v).replace(/\s/g, ""), "base64").toString();
  const farmConfig = (env) => execFileSync(process.env.FARM_TEST_CLI, ["config"], { cwd: src, env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  const blank = Object.keys(podEnv).filter((k) => podEnv[k] === "");
  if (blank.length) {
    // prod's secrets.env.example leaves the secrets blank for the operator, and
    // says farm-api refuses to start so: farm config refuses them too.
    let refusal = "";
    try {
      farmConfig(podEnv);
    } catch (e) {
      refusal = String(e.stderr);
    }
    check(/FARM_JWT_SECRET/.test(refusal), `${overlay}: farm config refuses the blank secrets (${blank.join(", ")}): ${refusal || "accepted"}`);
    // Filled as an operator would (a webhook key is whsec_ and base64).
    for (const k of blank) podEnv[k] = k === "FARM_WEBHOOK_SECRET" ? "whsec_" + Buffer.alloc(32, 7).toString("base64") : `filled-${k.toLowerCase()}-0123456789abcdef`;
  }
  try {
    farmConfig(podEnv);
    console.log(`${overlay}: farm config accepts the ConfigMap and Secret${blank.length ? " once the blanks are filled" : ""}`);
  } catch (e) {
    check(false, `${overlay}: farm config refuses the ConfigMap and Secret: ${e.stderr}`);
  }
  const names = new Set(objs.map((o) => `${o.kind}/${o.metadata.name}`));
  for (const o of objs) {
    const spec = podSpecOf(o);
    if (!spec) continue;
    for (const c of spec.containers) {
      for (const ef of c.envFrom || []) {
        if (ef.configMapRef) check(names.has(`ConfigMap/${ef.configMapRef.name}`), `${overlay}: ${o.metadata.name} envFrom ConfigMap ${ef.configMapRef.name} exists`);
        if (ef.secretRef) check(names.has(`Secret/${ef.secretRef.name}`), `${overlay}: ${o.metadata.name} envFrom Secret ${ef.secretRef.name} exists`);
      }
      for (const e of c.env || []) if (e.name.startsWith("FARM_")) check(farmVars.has(e.name), `${overlay}: ${o.metadata.name} env ${e.name} is in core/config.c's table`);
    }
    check(spec.securityContext?.runAsNonRoot === true, `${overlay}: ${o.kind} ${o.metadata.name} runs as non-root`);
  }
  for (const s of objs.filter((o) => o.kind === "Service" || o.kind === "PodDisruptionBudget")) {
    const sel = s.kind === "Service" ? s.spec.selector : s.spec.selector.matchLabels;
    check(objs.some((o) => podSpecOf(o) && o.kind !== "Job" && matches(sel, o.spec.template.metadata.labels)), `${overlay}: ${s.kind} ${s.metadata.name} selects some pods`);
  }

  // 4. farm containers: image, command, probes on real routes, grace periods
  const farmPods = objs.filter((o) => podSpecOf(o)?.containers.some((c) => c.image.includes("genfarm")));
  const images = new Set(farmPods.flatMap((o) => podSpecOf(o).containers.map((c) => c.image)));
  check(images.size === 1, `${overlay}: one image for api, worker and migrate (${[...images]})`);
  for (const o of farmPods) {
    const spec = podSpecOf(o);
    for (const c of spec.containers) {
      const binary = c.command?.[0];
      check(["farm-api", "farm-worker", "farm"].includes(binary), `${overlay}: ${o.metadata.name} runs one of the image's binaries (${binary})`);
      if (binary === "farm") continue;
      const wantPort = binary === "farm-api" ? setting("FARM_API_PORT") : setting("FARM_WORKER_METRICS_PORT");
      const probes = ["readinessProbe", "livenessProbe", "startupProbe"].filter((p) => c[p]);
      check(c.readinessProbe && c.livenessProbe, `${overlay}: ${o.metadata.name} has readiness and liveness probes`);
      // Start checks the bucket once before it listens, for up to FARM_STORAGE_TIMEOUT_MS:
      // the time the kubelet gives it to answer must be longer, or an S3 that drops
      // packets restarts the pod before it logs why (and KEDA cannot scale up from zero).
      const first = c.startupProbe ?? c.livenessProbe;
      const budget = ((first.initialDelaySeconds ?? 0) + (first.periodSeconds ?? 10) * (first.failureThreshold ?? 3)) * 1000;
      const storageMs = setting("FARM_STORAGE_TIMEOUT_MS");
      check(budget >= storageMs + 10000, `${overlay}: ${o.metadata.name} has ${budget / 1000} s to start, FARM_STORAGE_TIMEOUT_MS ${storageMs} ms and 10 s more`);
      for (const p of probes) {
        const hg = c[p].httpGet;
        if (!check(hg, `${overlay}: ${o.metadata.name} ${p} is an HTTP GET`)) continue;
        const port = typeof hg.port === "string" ? c.ports?.find((x) => x.name === hg.port)?.containerPort : hg.port;
        check(port === wantPort, `${overlay}: ${o.metadata.name} ${p} port ${hg.port} is ${binary}'s port ${wantPort}`);
        const code = await probeLive(binary, hg.path);
        check(code === 200, `${overlay}: ${o.metadata.name} ${p} ${hg.path} answers 200 on a real ${binary} (got ${code})`);
      }
      if (binary === "farm-api") {
        check(c.livenessProbe?.httpGet?.path === "/healthz", `${overlay}: api liveness /healthz`);
        // A Redis outage must not empty the Service: the api serves through it.
        const ready = c.readinessProbe?.httpGet?.path;
        const outage = await status(`http://127.0.0.1:${noRedisPort}${ready}`);
        const readyz = await status(`http://127.0.0.1:${noRedisPort}/readyz`);
        check(outage === 200 && readyz === 503, `${overlay}: api readiness ${ready} answers 200 with Redis down (got ${outage}; /readyz ${readyz})`);
        // ...but a new pod is not started (never Ready) before its database is migrated.
        const start = c.startupProbe?.httpGet?.path;
        const early = await status(`http://127.0.0.1:${unmigratedPort}${start}`);
        check(start && early === 503, `${overlay}: api startup ${start} answers 503 on a database not migrated (got ${early})`);
        const pre = c.lifecycle?.preStop?.exec?.command;
        const preS = pre && pre[0] === "sleep" ? Number(pre[1]) : 0;
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        check(grace > setting("FARM_SHUTDOWN_S") + preS, `${overlay}: api grace ${grace} s > preStop ${preS} s + FARM_SHUTDOWN_S ${setting("FARM_SHUTDOWN_S")} s`);
      } else {
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        check(grace > setting("FARM_WORKER_DRAIN_S"), `${overlay}: worker grace ${grace} s > FARM_WORKER_DRAIN_S ${setting("FARM_WORKER_DRAIN_S")} s`);
        check(c.ports?.some((x) => x.containerPort === wantPort), `${overlay}: worker declares its metrics port ${wantPort}`);
      }
      check(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${overlay}: ${o.metadata.name} has requests and a memory limit`);
      if (binary === "farm-api") {
        // Upload bodies alone may reach FARM_UPLOAD_MAX_INFLIGHT_BYTES: half the
        // limit at most, the rest for the process and the decodes.
        const limit = bytesOf(c.resources?.limits?.memory);
        const inflight = setting("FARM_UPLOAD_MAX_INFLIGHT_BYTES");
        check(inflight <= limit / 2, `${overlay}: api FARM_UPLOAD_MAX_INFLIGHT_BYTES ${inflight} is at most half its memory limit ${c.resources?.limits?.memory}`);
      }
      // A read-only root: /tmp, where libvips writes its temporary files, is an
      // emptyDir with a bound (farm migrate, above, runs no libvips).
      if (c.securityContext?.readOnlyRootFilesystem) {
        const mount = (c.volumeMounts || []).find((m) => m.mountPath === "/tmp");
        const vol = mount && (spec.volumes || []).find((v) => v.name === mount.name);
        check(vol?.emptyDir?.sizeLimit, `${overlay}: ${o.metadata.name} has a read-only root and /tmp is an emptyDir with a sizeLimit`);
      }
    }
  }

  // 5. autoscaling
  const hpa = get(objs, "HorizontalPodAutoscaler", "genfarm-api");
  check(hpa.spec.scaleTargetRef.name === "genfarm-api" && hpa.spec.metrics.some((m) => m.resource?.name === "cpu"), `${overlay}: the api's HPA scales genfarm-api on CPU`);
  // A node drain at the fewest api pods must be able to evict one.
  const pdb = get(objs, "PodDisruptionBudget", "genfarm-api").spec;
  const evictable = pdb.maxUnavailable !== undefined ? Number(pdb.maxUnavailable) >= 1 : Number(pdb.minAvailable) < hpa.spec.minReplicas;
  check(evictable, `${overlay}: the api's PodDisruptionBudget lets a drain evict a pod at minReplicas ${hpa.spec.minReplicas} (${JSON.stringify(pdb)})`);
  const so = get(objs, "ScaledObject", "genfarm-worker");
  check(names.has(`Deployment/${so.spec.scaleTargetRef.name}`), `${overlay}: the ScaledObject targets Deployment ${so.spec.scaleTargetRef.name}`);
  check(so.spec.minReplicaCount === 0 && so.spec.cooldownPeriod > 0, `${overlay}: workers scale to zero after a cooldown (${so.spec.cooldownPeriod} s)`);
  const conc = setting("FARM_WORKER_CONCURRENCY");
  for (const t of so.spec.triggers) {
    check(t.type === "prometheus" && Number(t.metadata.threshold) === conc, `${overlay}: trigger ${t.name} target ${t.metadata.threshold} = FARM_WORKER_CONCURRENCY ${conc}`);
    check(t.metadata.query.includes(`namespace="${cm.metadata.namespace}"`), `${overlay}: trigger ${t.name} reads its own namespace's series`);
  }
  check(so.spec.triggers[0].name === "ready" && /farm_queue_depth/.test(so.spec.triggers[0].metadata.query), `${overlay}: the first trigger is the ready depth`);
}

await stopFarm(worker);
await stopFarm(api);
await stopFarm(apiNoRedis);
await stopFarm(apiUnmigrated);
psql(`DROP DATABASE ${unmigrated}`);
if (failures) {
  console.error(`k8s-validate: ${failures} check(s) failed`);
  process.exit(1);
}
console.log("k8s-validate: passed");
