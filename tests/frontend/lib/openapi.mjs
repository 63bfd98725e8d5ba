// What the frontend tests share about the OpenAPI document: where it is, and
// a validator of live answers against it (ajv, JSON Schema 2020-12, as
// OpenAPI 3.1 uses).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const documentPath = join(root, 'api', 'openapi', 'openapi.json');

export function loadDocument() {
  return JSON.parse(readFileSync(documentPath, 'utf8'));
}

const DOC_ID = 'https://genfarm.invalid/openapi.json';

// Follows a local "$ref" of the document.
function deref(doc, obj) {
  while (obj && obj.$ref) {
    obj = obj.$ref.slice(2).split('/').reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return obj;
}

export class Contract {
  constructor(doc) {
    this.doc = doc;
    // strict: false lets the document's own keywords (example, description
    // in odd places, x-*) through; every JSON Schema keyword still applies.
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema({ ...doc, $id: DOC_ID });
    this.checked = new Set();
  }

  schema(name) {
    const v = this.ajv.getSchema(`${DOC_ID}#/components/schemas/${name}`);
    assert.ok(v, `no schema ${name}`);
    return v;
  }

  // Asserts `value` matches components/schemas/<name>.
  assertSchema(name, value, what = name) {
    const v = this.schema(name);
    if (!v(value)) {
      assert.fail(`${what} does not match ${name}: ${this.ajv.errorsText(v.errors)}\n${JSON.stringify(value).slice(0, 2000)}`);
    }
  }

  // Asserts that a live answer of METHOD TEMPLATE (a path of the document)
  // is documented: its status, its Content-Type, its JSON body against the
  // schema, and the headers documented for it present. Returns the body.
  async assertResponse(method, template, res) {
    const op = this.doc.paths[template]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${template} is not in the document`);
    const status = String(res.status);
    const spec = deref(this.doc, op.responses[status] ?? op.responses[`${status[0]}XX`]);
    assert.ok(spec, `${method} ${template} answered ${status}, which the document does not list (${Object.keys(op.responses)})`);
    this.checked.add(`${method} ${template} ${status}`);
    assert.ok(res.headers.get('x-request-id'), 'every answer carries X-Request-Id');
    for (const name of Object.keys(spec.headers ?? {})) {
      if (name === 'Retry-After' && status !== '429' && status !== '503') continue;
      if (name === 'ETag' || name === 'Cache-Control' || name === 'X-Accel-Buffering') {
        if (status !== '200') continue;
      }
      assert.ok(res.headers.get(name) !== null, `${method} ${template} ${status} lacks its documented header ${name}`);
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    if (!spec.content) {
      return null;
    }
    const media = spec.content[type];
    assert.ok(media, `${method} ${template} ${status} answered ${type}, documented: ${Object.keys(spec.content)}`);
    if (type !== 'application/json') return res;
    const body = await res.json();
    const schema = deref(this.doc, media.schema);
    const validate = media.schema.$ref
      ? this.ajv.getSchema(`${DOC_ID}${media.schema.$ref}`)
      : this.ajv.compile({ $ref: `${DOC_ID}#/paths/${template.replace(/~/g, '~0').replace(/\//g, '~1')}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema` });
    assert.ok(schema && validate);
    if (!validate(body)) {
      assert.fail(`${method} ${template} ${status}: the body does not match its schema: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 2000)}`);
    }
    return body;
  }
}
