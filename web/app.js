// web/app.js - the demo page: sign in, create generations, follow them live
// over the user's event stream, see credits and the ledger. Static, no build
// step; it uses the client of clients/js (served by farm-api as /client.js).
import { Client, ApiError, TERMINAL_EVENTS, newIdempotencyKey } from '/client.js';

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = 'genfarm.token';
// The user stream's last event this tab applied: a reload resumes after it
// instead of replaying the stream's whole history over the cards the list
// has just drawn as they are now (a running card set back to queued).
const EVENT_KEY = 'genfarm.lastEventId';

let farm = null;
let watching = null; // AbortController of the user stream
let identity = null; // {id, url} of the uploaded identity
let identityPreview = null;
// Whether the farm has DELETE /v1/generations/{id}: read from its own OpenAPI document.
let canDelete = false;
const cards = new Map(); // generation id -> {el, gen, done: Set, progress, stage}

// --- errors -------------------------------------------------------------------

function showError(err) {
  const box = $('#error');
  if (err instanceof ApiError) {
    box.textContent = `${err.message}` + (err.field ? ` (${err.field})` : '') + ` [${err.code}]`;
  } else {
    box.textContent = String(err?.message ?? err);
  }
  box.hidden = false;
}

function clearError() {
  $('#error').hidden = true;
  $('#error').textContent = '';
}

// Runs an action of the user; its failure is shown, never thrown. `quiet`:
// not the user's (a read a stream event asked for): the error shown stays.
async function act(fn, { quiet = false } = {}) {
  if (!quiet) clearError();
  try {
    await fn();
  } catch (err) {
    if (err?.name === 'AbortError') return;
    showError(err);
  }
}

// --- sign in ------------------------------------------------------------------

function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  // The token leaves the address bar (and the history) at once.
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

async function signIn(token) {
  farm = new Client({ baseUrl: '', token });
  try {
    await refreshCredits();
  } catch (err) {
    farm = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn();
    throw err;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#account').hidden = false;
  await Promise.all([loadFeatures(), loadPresets(), refreshLedger()]);
  await loadGenerations();
  watch();
}

function showSignIn() {
  $('#signin').hidden = false;
  $('#app').hidden = true;
  $('#account').hidden = true;
}

function signOut() {
  watching?.abort();
  watching = null;
  farm = null;
  pending = null;
  sessionStorage.removeItem(EVENT_KEY);
  clearIdentity();
  sessionStorage.removeItem(TOKEN_KEY);
  cards.clear();
  $('#generations').replaceChildren();
  showSignIn();
}

async function loadFeatures() {
  const res = await fetch('/v1/openapi.json');
  const doc = res.ok ? await res.json() : { paths: {} };
  canDelete = Boolean(doc.paths['/v1/generations/{id}']?.delete);
}

// --- credits and ledger ---------------------------------------------------------

async function refreshCredits() {
  const c = await farm.credits();
  $('#credits').textContent = `${c.available} credits available (${c.balance} balance, ${c.held} held)`;
}

async function refreshLedger() {
  const page = await farm.ledger({ limit: 20 });
  const rows = page.items.map((e) => {
    const tr = document.createElement('tr');
    for (const v of [new Date(e.created_at).toLocaleTimeString(), e.kind, e.amount, e.generation_id?.slice(0, 8) ?? e.reason ?? '']) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  });
  $('#ledger tbody').replaceChildren(...rows);
}

let refreshTimer = null;
function refreshAccountSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => act(() => Promise.all([refreshCredits(), refreshLedger()])), 200);
}

// --- presets and the form -------------------------------------------------------------

async function loadPresets() {
  const p = await farm.presets();
  const style = $('#style');
  style.replaceChildren(new Option('none', ''), ...p.styles.map((s) => new Option(s.name, s.name)));
  const picker = $('#pose-picker');
  picker.replaceChildren(
    ...p.poses.map((pose) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'pose';
      b.dataset.pose = pose.name;
      b.title = pose.description || pose.name;
      b.setAttribute('aria-pressed', 'false');
      const img = document.createElement('img');
      img.src = pose.map_url;
      img.alt = pose.name;
      b.append(img, document.createTextNode(pose.name));
      b.addEventListener('click', () => b.setAttribute('aria-pressed', String(b.getAttribute('aria-pressed') !== 'true')));
      return b;
    }),
  );
}

function kind() {
  return document.querySelector('input[name=kind]:checked').value;
}

function formParams() {
  const [w, h] = $('#size').value.split('x').map(Number);
  const params = {
    kind: kind(),
    prompt: $('#prompt').value,
    width: w,
    height: h ?? w,
    count: Number($('#count').value),
  };
  if ($('#style').value) params.style = $('#style').value;
  if (identity) params.identity = { upload_id: identity.id };
  if (params.kind === 'pose') {
    params.poses = [...document.querySelectorAll('.pose[aria-pressed=true]')].map((b) => ({ preset: b.dataset.pose }));
  }
  return params;
}

async function uploadIdentity(file) {
  $('#identity-status').textContent = 'uploading…';
  try {
    const up = await farm.upload(file);
    identity = { id: up.id };
    if (identityPreview) URL.revokeObjectURL(identityPreview);
    identityPreview = URL.createObjectURL(file);
    $('#identity-preview').src = identityPreview;
    $('#identity-preview').hidden = false;
    $('#identity-clear').hidden = false;
    $('#identity-status').textContent = `identity ${up.id.slice(0, 8)} (${up.width}×${up.height} ${up.format})`;
  } catch (err) {
    $('#identity-status').textContent = '';
    $('#identity-file').value = '';
    throw err;
  }
}

function clearIdentity() {
  identity = null;
  if (identityPreview) URL.revokeObjectURL(identityPreview);
  identityPreview = null;
  $('#identity-file').value = '';
  $('#identity-preview').hidden = true;
  $('#identity-clear').hidden = true;
  $('#identity-status').textContent = '';
}

// The Idempotency-Key of the form as last sent, kept while its outcome is
// unknown (no answer, 5xx, 429): pressing Generate again for the same form
// then holds credits once. A changed form is another request, another key.
let pending = null;

async function submit() {
  const button = $('#generate');
  button.disabled = true;
  const params = formParams();
  const body = JSON.stringify(params);
  if (pending?.body !== body) pending = { body, key: newIdempotencyKey() };
  try {
    const acc = await farm.createGeneration(params, { idempotencyKey: pending.key });
    pending = null;
    const gen = await farm.getGeneration(acc.id);
    render(gen);
    refreshAccountSoon();
  } catch (err) {
    if (err?.status >= 400 && err.status < 500 && err.status !== 429) pending = null;
    throw err;
  } finally {
    button.disabled = false;
  }
}

// --- generations ------------------------------------------------------------------

async function loadGenerations() {
  const page = await farm.list({ limit: 20 });
  for (const g of page.items.reverse()) render(g);
}

function card(id) {
  let c = cards.get(id);
  if (c) return c;
  const el = document.createElement('li');
  el.className = 'generation';
  el.dataset.id = id;
  el.innerHTML = `<div class="head"><span class="status"></span><span class="prompt"></span>
    <span class="cost"></span><button type="button" class="cancel">Cancel</button>
    <button type="button" class="delete">Delete</button></div>
    <p class="gen-error" hidden></p><div class="slots"></div>`;
  el.querySelector('.cancel').addEventListener('click', () => act(async () => {
    render(await farm.cancel(id));
    refreshAccountSoon();
  }));
  el.querySelector('.delete').addEventListener('click', () => act(async () => {
    await farm.remove(id);
    cards.delete(id);
    el.remove();
  }));
  c = { el, gen: null, done: new Map(), progress: 0, stage: null };
  cards.set(id, c);
  $('#generations').prepend(el);
  return c;
}

// The picture of one output: the 512 variant when there is one.
function pick(outputs, index) {
  const mine = outputs.filter((o) => o.index === index && o.url);
  return mine.find((o) => o.variant === '512') ?? mine.find((o) => o.variant === 'full') ?? mine[0];
}

// Renders a whole generation (from GET, the list or a terminal event).
function render(gen) {
  const c = card(gen.id);
  // A generation read before it ended (a GET slower than its terminal event)
  // does not undo the end.
  if (TERMINAL_EVENTS.includes(c.gen?.status) && !TERMINAL_EVENTS.includes(gen.status)) return;
  c.gen = gen;
  for (const o of gen.outputs ?? []) {
    const best = pick(gen.outputs, o.index);
    if (best) c.done.set(o.index, best);
  }
  c.progress = gen.progress ?? c.progress;
  c.stage = gen.stage ?? null;
  paint(c);
}

function paint(c) {
  const g = c.gen;
  if (!g) return;
  const el = c.el;
  el.dataset.status = g.status;
  const st = el.querySelector('.status');
  st.textContent = g.status;
  st.className = `status ${g.status}`;
  el.querySelector('.prompt').textContent = `${g.kind}: ${g.params?.prompt ?? ''}`;
  el.querySelector('.cost').textContent = `${g.cost} credits`;
  const finished = TERMINAL_EVENTS.includes(g.status);
  el.querySelector('.cancel').hidden = finished;
  el.querySelector('.delete').hidden = !finished || !canDelete;
  const err = el.querySelector('.gen-error');
  err.hidden = !g.error;
  err.textContent = g.error ? `${g.error.code}: ${g.error.message}` : '';
  const slots = el.querySelector('.slots');
  while (slots.children.length < g.images) {
    const s = document.createElement('div');
    s.className = 'slot';
    s.dataset.index = String(slots.children.length);
    slots.append(s);
  }
  let current = true; // the first image not done is the one being made
  for (const s of slots.children) {
    const i = Number(s.dataset.index);
    const out = c.done.get(i);
    if (out) {
      if (s.dataset.url !== out.url) {
        const img = document.createElement('img');
        img.src = out.url;
        img.alt = `image ${i + 1}`;
        img.className = 'output';
        s.replaceChildren(img);
        s.dataset.url = out.url;
      }
      continue;
    }
    delete s.dataset.url;
    if (finished) {
      s.replaceChildren(document.createTextNode(g.status === 'succeeded' ? '' : g.status));
    } else if (g.status === 'running' && current) {
      const p = document.createElement('progress');
      p.max = 100;
      p.value = c.progress;
      s.replaceChildren(document.createTextNode(`${c.stage ?? 'starting'} ${c.progress}%`), p);
      s.dataset.progress = String(c.progress);
      current = false;
    } else {
      s.replaceChildren(document.createTextNode(g.status === 'queued' && g.queue_position != null ? `queued (#${g.queue_position + 1})` : 'waiting'));
    }
  }
}

// A generation this page has not shown (made in another tab, or before a
// reload): read it whole, once. The user stream also replays the events of
// a generation deleted since; that one is 404 and stays unshown.
const reading = new Set();
async function readFresh(id) {
  if (reading.has(id)) return;
  reading.add(id);
  try {
    render(await farm.getGeneration(id));
  } catch (err) {
    if (err.status !== 404) throw err;
  } finally {
    reading.delete(id);
  }
}

function onEvent(ev) {
  const id = ev.data?.id;
  if (!id) return;
  // A terminal event's data is the whole generation: shown as it is, whether
  // or not its card is there yet.
  if (TERMINAL_EVENTS.includes(ev.type)) {
    render(ev.data);
    refreshAccountSoon();
    return;
  }
  const c = cards.get(id);
  if (!c?.gen) {
    act(() => readFresh(id), { quiet: true });
    return;
  }
  if (TERMINAL_EVENTS.includes(c.gen.status)) return; // a replay of an older event
  const g = c.gen;
  switch (ev.type) {
    case 'queued':
      g.status = 'queued';
      g.queue_position = ev.data.queue_position ?? null;
      break;
    case 'started':
      g.status = 'running';
      break;
    case 'progress':
      g.status = 'running';
      c.progress = ev.data.progress ?? c.progress;
      c.stage = ev.data.stage ?? c.stage;
      break;
    case 'image':
      g.status = 'running';
      for (const o of ev.data.outputs ?? []) {
        const best = pick(ev.data.outputs, o.index);
        if (best) c.done.set(o.index, best);
      }
      break;
    default:
      return;
  }
  paint(c);
}

// One stream for every generation of the user (API.md, GET /v1/events). The
// client waits out dropped connections, 429 and 503 itself; what it throws is
// shown, and the stream starts again after a while, unless the token is no
// longer good (401): then only signing in again helps.
async function watch() {
  watching?.abort();
  const ctl = new AbortController();
  watching = ctl;
  for (let failures = 0; !ctl.signal.aborted; failures++) {
    try {
      const lastEventId = sessionStorage.getItem(EVENT_KEY) ?? undefined;
      for await (const ev of farm.watchAll({ lastEventId, signal: ctl.signal })) {
        onEvent(ev);
        if (ev.id) sessionStorage.setItem(EVENT_KEY, ev.id);
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
      showError(err);
      if (err?.status === 401) return;
    }
    await new Promise((r) => setTimeout(r, Math.min(30000, 2000 * 2 ** Math.min(failures, 4))));
  }
}

// --- wiring ---------------------------------------------------------------------

function main() {
  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    act(() => signIn($('#token').value.trim()));
  });
  $('#signout').addEventListener('click', signOut);
  $('#gen-form').addEventListener('submit', (e) => {
    e.preventDefault();
    act(submit);
  });
  for (const r of document.querySelectorAll('input[name=kind]')) {
    r.addEventListener('change', () => {
      $('#poses').hidden = kind() !== 'pose';
    });
  }
  $('#identity-file').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) act(() => uploadIdentity(f));
  });
  $('#identity-clear').addEventListener('click', clearIdentity);

  const token = tokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);
  if (token) act(() => signIn(token));
  else showSignIn();
}

main();
