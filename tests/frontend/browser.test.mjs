// The demo page in a real browser (ctest frontend_browser, under
// tests/frontend/with-farm): playwright-core drives Debian's Chromium,
// headless, on a live farm with the local provider. Screenshots go to
// $FARM_TEST_ARTIFACTS (build/test/frontend-artifacts, with timings.txt:
// click to first image, one line per run); any console error
// or uncaught exception of the page fails the test it happens in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import { apiUrl, newUser } from './lib/farm.mjs';

const artifacts = process.env.FARM_TEST_ARTIFACTS ?? join(tmpdir(), 'genfarm-frontend-artifacts');
mkdirSync(artifacts, { recursive: true });
const TIMEOUT = 120_000;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.FARM_TEST_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // The sandbox needs user namespaces, which CI containers and root lack.
    args: ['--no-sandbox'],
  });
});
after(async () => {
  await browser?.close();
});

// A page of a fresh browser context, its console errors collected.
async function openPage(t) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  t.after(async () => {
    await context.close();
  });
  return { page, errors };
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function signIn(page, token) {
  await page.goto(`${apiUrl}/#token=${encodeURIComponent(token)}`);
  await page.locator('#app').waitFor({ state: 'visible' });
}

// Every image of a generation's card rendered (decoded, naturalWidth > 0).
async function imagesOf(page, id) {
  return page.$$eval(`.generation[data-id="${id}"] img.output`, (imgs) =>
    imgs.map((i) => ({ complete: i.complete, w: i.naturalWidth })));
}

async function waitStatus(page, id, status) {
  await page.locator(`.generation[data-id="${id}"][data-status="${status}"]`).waitFor();
}

async function waitImages(page, id, n) {
  await page.waitForFunction(
    ([id, n]) => {
      const imgs = [...document.querySelectorAll(`.generation[data-id="${id}"] img.output`)];
      return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0);
    },
    [id, n],
    { timeout: TIMEOUT },
  );
}

// Clicks Generate and returns the new generation's id (the card added first).
async function generate(page) {
  const before = await page.$$eval('.generation', (els) => els.map((e) => e.dataset.id));
  await page.click('#generate');
  const handle = await page.waitForFunction(
    (before) => [...document.querySelectorAll('.generation')].map((e) => e.dataset.id).find((id) => !before.includes(id)),
    before,
  );
  return handle.jsonValue();
}

test('the page and its files come with a strict Content-Security-Policy', async () => {
  for (const path of ['/', '/app.js', '/client.js', '/style.css']) {
    const res = await fetch(apiUrl + path);
    assert.equal(res.status, 200, path);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, path);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
    const body = await res.text();
    if (path === '/') {
      const scripts = [...body.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      assert.ok(scripts.length > 0 && scripts.every((tag) => /\ssrc=/.test(tag)), 'no inline script');
    }
  }
});

test('sign in: the dev token in the fragment, or pasted', async (t) => {
  const { page, errors } = await openPage(t);
  const u = newUser();
  await signIn(page, u.token);
  assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
  await page.locator('#credits', { hasText: '100 credits available' }).waitFor();
  await page.locator('#ledger tbody tr', { hasText: 'grant' }).waitFor();
  await page.click('#signout');
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.fill('#token', 'not-a-token');
  await page.click('#signin button[type=submit]');
  await page.locator('#error', { hasText: 'unauthorized' }).waitFor();
  await page.fill('#token', u.token);
  await page.click('#signin button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#error').waitFor({ state: 'hidden' });
  // A 401 is a failed fetch the browser itself logs; it is the only error allowed here.
  assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
});

test('an avatar: progress, then every image as it finishes', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  await page.selectOption('#size', '512');
  await page.fill('#count', '3');
  await page.selectOption('#style', { index: 1 });
  const t0 = Date.now();
  const id = await generate(page);
  await page.locator(`.generation[data-id="${id}"] .slot progress`).first().waitFor();
  await page.waitForFunction((id) => [...document.querySelectorAll(`.generation[data-id="${id}"] img.output`)].some((i) => i.complete && i.naturalWidth > 0), id);
  const firstImageMs = Date.now() - t0;
  await shot(page, 'avatar-in-progress');
  await waitStatus(page, id, 'succeeded');
  await waitImages(page, id, 3);
  const imgs = await imagesOf(page, id);
  assert.equal(imgs.length, 3);
  assert.ok(imgs.every((i) => i.w > 0));
  await page.locator('#ledger tbody tr', { hasText: 'capture' }).first().waitFor();
  await shot(page, 'avatar-done');
  const line = `click to first image (local provider, 512x512, this build): ${firstImageMs} ms\n`;
  appendFileSync(join(artifacts, 'timings.txt'), line);
  t.diagnostic(line.trim());
  assert.deepEqual(errors, []);
});

test('a pose generation from the pose picker', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  await page.check('input[name=kind][value=pose]');
  await page.locator('#poses').waitFor({ state: 'visible' });
  // The picker shows the presets' pose maps.
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#pose-picker img')];
    return imgs.length > 1 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  const poses = page.locator('#pose-picker .pose');
  await poses.nth(0).click();
  await poses.nth(1).click();
  await page.selectOption('#size', '512');
  await shot(page, 'pose-picker');
  const id = await generate(page);
  await waitStatus(page, id, 'succeeded');
  await waitImages(page, id, 2);
  assert.match(await page.locator(`.generation[data-id="${id}"] .prompt`).textContent(), /^pose:/);
  // Delete is offered on a finished generation exactly when the farm's document has the route.
  const doc = await (await fetch(`${apiUrl}/v1/openapi.json`)).json();
  const hasDelete = Boolean(doc.paths['/v1/generations/{id}']?.delete);
  assert.equal(await page.locator(`.generation[data-id="${id}"] .delete`).isVisible(), hasDelete);
  await shot(page, 'pose-done');
  assert.deepEqual(errors, []);
});

test('delete a finished generation: its card and its files are gone', async (t) => {
  const { page, errors } = await openPage(t);
  const user = newUser();
  await signIn(page, user.token);
  const id = await generate(page);
  await waitStatus(page, id, 'succeeded');
  await waitImages(page, id, 1);
  const src = await page.locator(`.generation[data-id="${id}"] img.output`).first().getAttribute('src');
  await page.click(`.generation[data-id="${id}"] .delete`);
  await page.locator(`.generation[data-id="${id}"]`).waitFor({ state: 'detached' });
  const auth = { Authorization: `Bearer ${user.token}` };
  assert.equal((await fetch(`${apiUrl}/v1/generations/${id}`, { headers: auth })).status, 404);
  assert.equal((await fetch(new URL(src, apiUrl))).status, 404, 'its signed file URL no longer serves');
  // The user stream still replays the deleted generation's events to a tab
  // that has seen none (a tab resumes after the last it saw): the page asks
  // for it (404) and shows nothing.
  await page.evaluate(() => sessionStorage.removeItem('genfarm.lastEventId'));
  const replayed = page.waitForResponse((r) => r.url().endsWith(`/v1/generations/${id}`) && r.status() === 404);
  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' });
  await replayed;
  assert.equal(await page.locator(`.generation[data-id="${id}"]`).count(), 0, 'not back after a reload');
  await shot(page, 'deleted');
  assert.deepEqual(errors.filter((e) => !(/status of 404/.test(e) && e.includes(id))), []);
});

test('a reload in the middle of a generation resumes it', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  await page.fill('#count', '4');
  const id = await generate(page);
  await page.waitForFunction((id) => document.querySelectorAll(`.generation[data-id="${id}"] img.output`).length >= 1, id);
  // Every status the card shows after the reload, from the page's first script on.
  await page.addInitScript((id) => {
    window.statusTrail = [];
    new MutationObserver(() => {
      const s = document.querySelector(`.generation[data-id="${id}"]`)?.dataset.status;
      if (s && s !== window.statusTrail.at(-1)) window.statusTrail.push(s);
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
  }, id);
  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' });
  const card = page.locator(`.generation[data-id="${id}"]`);
  await card.waitFor();
  const statusAfterReload = await card.getAttribute('data-status');
  assert.ok(['queued', 'running'].includes(statusAfterReload), `still going after the reload: ${statusAfterReload}`);
  await waitStatus(page, id, 'succeeded');
  await waitImages(page, id, 4);
  // The stream resumed where the tab was: no older event set the card back.
  const trail = await page.evaluate(() => window.statusTrail);
  assert.ok(!trail.slice(trail.indexOf('running')).includes('queued'), `statuses after the reload: ${trail}`);
  await shot(page, 'reload-resumed');
  assert.deepEqual(errors, []);
});

test('cancel a running generation', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  await page.fill('#count', '4');
  const id = await generate(page);
  await waitStatus(page, id, 'running');
  await page.click(`.generation[data-id="${id}"] .cancel`);
  await waitStatus(page, id, 'canceled');
  const done = (await imagesOf(page, id)).length;
  assert.ok(done < 4, `canceled before the last image (${done} done)`);
  await page.locator('#ledger tbody tr', { hasText: 'release' }).first().waitFor();
  await shot(page, 'canceled');
  assert.deepEqual(errors, []);
});

test('out of credits: the API\'s message is shown', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  await page.check('input[name=kind][value=pose]');
  const poses = page.locator('#pose-picker .pose');
  for (let i = 0; i < 4; i++) await poses.nth(i).click();
  await page.click('#generate');
  await page.locator('#error', { hasText: 'costs 120 credits; 100 available' }).waitFor();
  assert.match(await page.locator('#error').textContent(), /insufficient_credits/);
  await shot(page, 'out-of-credits');
  // The browser itself logs the failed fetch (402); nothing else may be logged.
  assert.deepEqual(errors.filter((e) => !/status of 402/.test(e)), []);
});

test('Generate pressed again after its answers were lost holds once', async (t) => {
  const { page, errors } = await openPage(t);
  const u = newUser();
  await signIn(page, u.token);
  // The farm gets every POST; the page gets none of the first three answers
  // (the client's own resends included).
  const keys = [];
  let lose = 3;
  await page.route('**/v1/generations', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    keys.push(route.request().headers()['idempotency-key']);
    const res = await route.fetch();
    if (lose-- > 0) return route.abort('connectionreset');
    return route.fulfill({ response: res });
  });
  await page.fill('#prompt', 'a portrait whose answers were lost');
  await page.click('#generate');
  await page.locator('#error', { hasText: 'network_error' }).waitFor();
  assert.equal(keys.length, 3, 'the client sent it three times');
  // (Its card may be shown already: the user stream has its events.)
  await page.click('#generate');
  await page.locator('#error').waitFor({ state: 'hidden' });
  await page.waitForFunction(() => !document.querySelector('#generate').disabled);
  assert.equal(keys.length, 4, `POSTs: ${keys.length}`);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]), `one key: ${keys}`);
  const mine = await (await fetch(`${apiUrl}/v1/generations?limit=10`, { headers: { Authorization: `Bearer ${u.token}` } })).json();
  assert.equal(mine.items.length, 1, 'one generation');
  await page.locator(`.generation[data-id="${mine.items[0].id}"]`).waitFor();
  // A changed form is another request, with another key.
  await page.fill('#prompt', 'another portrait');
  await generate(page);
  assert.equal(keys.length, 5);
  assert.notEqual(keys[4], keys[0]);
  // The browser logs the aborted fetches; nothing else may be logged.
  assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_RESET|Failed to load resource/.test(e)), []);
});

test('a generation read before it ended does not undo its end', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  // Every GET of one generation is answered as the farm had it when asked,
  // but held back until the page has shown the end from its event stream:
  // the slow answers then arrive after the terminal event.
  const held = [];
  await page.route(/\/v1\/generations\/[0-9a-f-]{36}$/, async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    held.push({ route, res: await route.fetch() });
  });
  await page.fill('#prompt', 'a portrait whose reads are slow');
  await page.click('#generate');
  await page.locator('.generation[data-status="succeeded"]').waitFor({ timeout: 30_000 });
  const id = await page.$eval('.generation[data-status="succeeded"]', (e) => e.dataset.id);
  await waitImages(page, id, 1);
  assert.ok(held.length > 0, 'no GET was held');
  const stale = await Promise.all(held.map(async ({ res }) => (await res.json()).status));
  assert.ok(stale.some((s) => s !== 'succeeded'), `the held answers: ${stale}`);
  for (const { route, res } of held) await route.fulfill({ response: res });
  await page.waitForFunction(() => !document.querySelector('#generate').disabled);
  await page.waitForTimeout(500);
  assert.equal(await page.$eval(`.generation[data-id="${id}"]`, (e) => e.dataset.status), 'succeeded');
  assert.deepEqual(errors, []);
});

test('upload an identity and generate with it', async (t) => {
  const { page, errors } = await openPage(t);
  await signIn(page, newUser().token);
  // The picker's pose maps arrive with the presets, after sign-in: one of them is the upload.
  await page.waitForFunction(() => document.querySelector('#pose-picker img') !== null);
  const png = await page.evaluate(async () => {
    const src = document.querySelector('#pose-picker img').src;
    const b = new Uint8Array(await (await fetch(src)).arrayBuffer());
    return Array.from(b);
  });
  await page.setInputFiles('#identity-file', { name: 'me.png', mimeType: 'image/png', buffer: Buffer.from(png) });
  await page.locator('#identity-status', { hasText: /identity [0-9a-f]{8} \(\d+×\d+ png\)/ }).waitFor();
  await page.waitForFunction(() => document.querySelector('#identity-preview').naturalWidth > 0);
  await page.selectOption('#size', '512');
  const id = await generate(page);
  await waitStatus(page, id, 'succeeded');
  await waitImages(page, id, 1);
  await shot(page, 'identity');
  assert.deepEqual(errors, []);
});
