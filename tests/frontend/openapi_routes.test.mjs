// The document against the router, both ways (ctest frontend_openapi_routes):
// every route that api/*.c and core/proc.c register is a path + method of
// api/openapi/openapi.json, and every path + method there is registered.
//
// The routes are read from the source: each gf_httpd_route() call with a
// literal method and pattern. Two calls register computed patterns and are
// not API routes: api/cors.c (the OPTIONS preflights of CORS) and api/web.c
// (the demo page's static files). Any other non-literal call fails the test,
// so a route cannot hide from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { root, loadDocument } from './lib/openapi.mjs';

const computed = new Map([
  ['api/cors.c', 'OPTIONS'],
  ['api/web.c', 'GET'],
]);

function routerRoutes() {
  const files = readdirSync(join(root, 'api'))
    .filter((f) => f.endsWith('.c'))
    .map((f) => `api/${f}`)
    .concat(['core/proc.c']);
  const routes = new Set();
  const call = /gf_httpd_route\s*\(\s*[^,]+,\s*("([A-Z]+)"|[^,]+)\s*,\s*("([^"]*)"|[^,]+)\s*,/g;
  let calls = 0;
  for (const file of files) {
    const src = readFileSync(join(root, file), 'utf8');
    for (const m of src.matchAll(call)) {
      calls++;
      const [, , method, , pattern] = m;
      if (method && pattern !== undefined) {
        routes.add(`${method} ${pattern}`);
        continue;
      }
      assert.equal(computed.get(file), method,
        `${file}: a gf_httpd_route() with a computed method or pattern (${m[0]}): only ${[...computed.keys()].join(' and ')} may have one`);
    }
  }
  assert.ok(calls >= 15, `found only ${calls} gf_httpd_route() calls: is the source layout still what this test reads?`);
  return routes;
}

function documentRoutes(doc) {
  const routes = new Set();
  const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of methods) {
      if (item[m]) routes.add(`${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`);
    }
  }
  return routes;
}

test('every route of the router is in the document, and nothing else', () => {
  const router = routerRoutes();
  const documented = documentRoutes(loadDocument());
  const api = new Set([...router].filter((r) => !r.startsWith('OPTIONS ')));
  const missing = [...api].filter((r) => !documented.has(r)).sort();
  const extra = [...documented].filter((r) => !api.has(r)).sort();
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] },
    'missing: routes of the router not in api/openapi/openapi.json; extra: routes there that the router lacks');
});

test('the OPTIONS preflight routes are for documented paths only', () => {
  const documented = documentRoutes(loadDocument());
  const paths = new Set([...documented].map((r) => r.split(' ')[1]));
  const src = readFileSync(join(root, 'api/cors.c'), 'utf8');
  const list = src.slice(src.indexOf('patterns[] = {'), src.indexOf('NULL};'));
  const patterns = [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(patterns.length > 0);
  for (const p of patterns) assert.ok(paths.has(p), `api/cors.c preflights ${p}, which is not documented`);
});
