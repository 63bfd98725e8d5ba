// clients/js/index.js - a client of the genfarm generation API (API.md).
//
// Dependency-free: fetch for requests, and event streams read from the
// response body (not EventSource, which cannot send the Authorization
// header), so it runs the same in browsers and in Node >= 20.
//
//   import { Client, ApiError } from '@genfarm/client';
//   const farm = new Client({ baseUrl: 'http://127.0.0.1:8080', token });
//   const g = await farm.createGeneration({ kind: 'avatar', prompt: 'a red-haired astronaut' });
//   for await (const ev of farm.watch(g.id)) console.log(ev.type, ev.data);
//
// Every failed call rejects with an ApiError. Types: index.d.ts.

/** The events that end a generation (and its stream). */
export const TERMINAL_EVENTS = Object.freeze(['succeeded', 'partial', 'failed', 'canceled', 'expired']);
// Refusals of a stream (or its GET) that are waited out, not thrown: the farm
// unavailable (503; 502 and 504 from a proxy while its api restarts) and the
// per-user stream cap (429).
const WAITED_OUT = Object.freeze([429, 502, 503, 504]);

/**
 * The one error of this client: an answer of the API that is not a success
 * (its status and API.md's error code, message and field), or a request that
 * got no answer at all (status 0, code "network_error").
 */
export class ApiError extends Error {
  /**
   * @param {{status: number, code: string, message: string, field?: string|null,
   *          retryAfter?: number|null, requestId?: string|null,
   *          idempotencyKey?: string|null}} e
   */
  constructor({ status, code, message, field = null, retryAfter = null, requestId = null, idempotencyKey = null }) {
    super(message);
    this.name = 'ApiError';
    /** HTTP status; 0 when no answer came. */
    this.status = status;
    /** API.md's machine code: "insufficient_credits", "rate_limited", ... */
    this.code = code;
    /** The field, header or query parameter at fault, or null. */
    this.field = field;
    /** Seconds to wait before retrying (the Retry-After header), or null. */
    this.retryAfter = retryAfter;
    /** The X-Request-Id of the answer, for support. */
    this.requestId = requestId;
    /**
     * createGeneration's Idempotency-Key: a retry with it (after a network
     * error, say, where the farm may have accepted the request) holds once.
     */
    this.idempotencyKey = idempotencyKey;
  }
}

/**
 * A random UUID v4, as createGeneration makes its Idempotency-Key
 * (crypto.getRandomValues exists in browsers and Node alike, and in pages
 * served over plain http, where crypto.randomUUID does not).
 */
export function newIdempotencyKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The image type of `bytes` by their signature, as the farm checks it; null if none. */
function sniffImageType(bytes) {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' &&
      String.fromCharCode(...b.subarray(8, 12)) === 'WEBP') return 'image/webp';
  return null;
}

/** True when event id `a` comes after `b`: numbers (a generation's stream) or "<ms>-<seq>" (the user's). */
function idAfter(a, b) {
  const num = /^\d+$/;
  if (num.test(a) && num.test(b)) return BigInt(a) > BigInt(b);
  const pair = /^(\d+)-(\d+)$/;
  const pa = pair.exec(a);
  const pb = pair.exec(b);
  if (pa && pb) {
    const ma = BigInt(pa[1]);
    const mb = BigInt(pb[1]);
    return ma > mb || (ma === mb && BigInt(pa[2]) > BigInt(pb[2]));
  }
  return a !== b;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Reads a text/event-stream body: yields {id, event, data} per event and
 * {retry} for a retry: line; comments (": ping") are skipped.
 */
async function* parseEventStream(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let id = null;
  let event = '';
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      // A CR at the end of what came may be the first half of a CRLF: wait for the rest.
      while ((nl = buf.search(/\r\n|\r(?!$)|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length) yield { id, event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line[0] === ':') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value[0] === ' ') value = value.slice(1);
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry' && /^\d+$/.test(value)) yield { retry: Number(value) };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

export class Client {
  /**
   * @param {{baseUrl?: string, token?: string, getToken?: () => (string|Promise<string>),
   *          fetch?: typeof fetch, reconnectDelayMs?: number, maxReconnectDelayMs?: number,
   *          createRetries?: number, onRetry?: (e: {error: ApiError, delayMs: number}) => void}} options
   *   baseUrl: the farm's origin ("" in a page the farm serves); token: the
   *   bearer JWT; getToken: asked for the token before every request instead
   *   (a fresh one after a 401 ends an event stream's wait); reconnectDelayMs:
   *   the first wait before an event stream reconnects, until the server
   *   says otherwise (retry:), doubled with jitter at each failure in a row
   *   up to maxReconnectDelayMs; createRetries: how many times
   *   createGeneration sends again, with its key, when no answer came or
   *   the farm was unavailable (503); onRetry: told each wait before a
   *   reconnect or a resend, with its cause.
   */
  constructor({
    baseUrl = '',
    token,
    getToken,
    fetch: fetchFn,
    reconnectDelayMs = 2000,
    maxReconnectDelayMs = 30000,
    createRetries = 2,
    onRetry,
  } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
    this.getToken = getToken;
    this.reconnectDelayMs = reconnectDelayMs;
    this.maxReconnectDelayMs = maxReconnectDelayMs;
    this.createRetries = createRetries;
    this.onRetry = onRetry;
    this._fetch = fetchFn ?? ((...a) => globalThis.fetch(...a));
  }

  async _headers(extra) {
    const h = { ...extra };
    const token = this.getToken ? await this.getToken() : this.token;
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  /** The wait after `failures` failures in a row from `base`: doubling, with jitter, capped. */
  _backoff(base, failures) {
    const d = Math.min(this.maxReconnectDelayMs, base * 2 ** Math.min(failures - 1, 16));
    return Math.round(d / 2 + Math.random() * (d / 2));
  }

  _retrying(error, delayMs) {
    try {
      this.onRetry?.({ error, delayMs });
    } catch {
      // the caller's hook: its failure is not the request's
    }
  }

  async _error(res) {
    let body = null;
    try {
      body = await res.json();
    } catch {
      // not the API's error shape (a proxy's page, say): described below
    }
    const e = body?.error ?? {};
    const ra = res.headers.get('retry-after');
    return new ApiError({
      status: res.status,
      code: typeof e.code === 'string' ? e.code : `http_${res.status}`,
      message: typeof e.message === 'string' ? e.message : `HTTP ${res.status} ${res.statusText}`,
      field: e.field ?? null,
      retryAfter: ra !== null && /^\d+$/.test(ra) ? Number(ra) : null,
      requestId: res.headers.get('x-request-id'),
    });
  }

  async _send(method, path, { body, type, headers, signal } = {}) {
    const h = await this._headers(headers);
    if (body !== undefined) h['Content-Type'] = type ?? 'application/json';
    const payload = body === undefined || type ? body : JSON.stringify(body);
    let res;
    try {
      res = await this._fetch(this.baseUrl + path, { method, headers: h, body: payload, signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new ApiError({ status: 0, code: 'network_error', message: String(err?.message ?? err) });
    }
    if (!res.ok) throw await this._error(res);
    return res;
  }

  async _json(method, path, opts) {
    const res = await this._send(method, path, opts);
    if (res.status === 204) return null;
    return res.json();
  }

  _query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== null) q.set(k, String(v));
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  /**
   * POST /v1/generations. The Idempotency-Key is made here when not given.
   * When no answer comes (the farm may have accepted it) or the farm is
   * unavailable (503), the request is sent again with the same key, up to
   * `createRetries` times, so it holds credits once; a failure that remains
   * carries the key (err.idempotencyKey) for the caller's own retry.
   */
  async createGeneration(params, { idempotencyKey = newIdempotencyKey(), signal } = {}) {
    for (let failures = 1; ; failures++) {
      try {
        return await this._json('POST', '/v1/generations', {
          body: params,
          headers: { 'Idempotency-Key': idempotencyKey },
          signal,
        });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        err.idempotencyKey = idempotencyKey;
        if ((err.status !== 0 && err.status !== 503) || failures > this.createRetries) throw err;
        const delay = Math.max(this._backoff(500, failures), (err.retryAfter ?? 0) * 1000);
        this._retrying(err, delay);
        await sleep(delay, signal);
      }
    }
  }

  getGeneration(id, { signal } = {}) {
    return this._json('GET', `/v1/generations/${encodeURIComponent(id)}`, { signal });
  }

  /** GET /v1/generations: {items, next_cursor}, newest first. */
  list({ status, kind, limit, cursor, signal } = {}) {
    return this._json('GET', `/v1/generations${this._query({ status, kind, limit, cursor })}`, { signal });
  }

  cancel(id, { signal } = {}) {
    return this._json('POST', `/v1/generations/${encodeURIComponent(id)}/cancel`, { signal });
  }

  /** DELETE /v1/generations/{id} (finished generations only): resolves to null. */
  remove(id, { signal } = {}) {
    return this._json('DELETE', `/v1/generations/${encodeURIComponent(id)}`, { signal });
  }

  /**
   * POST /v1/uploads of a File or Blob, or of bytes (Uint8Array,
   * ArrayBuffer). The type sent is the one their signature shows (the farm
   * checks the bytes, and a Blob's own type is often generic or "image/jpg"),
   * else `type`, else a Blob's type.
   */
  async upload(fileOrBytes, { type, signal } = {}) {
    let body = fileOrBytes;
    let t;
    if (typeof Blob !== 'undefined' && fileOrBytes instanceof Blob) {
      t = sniffImageType(new Uint8Array(await fileOrBytes.slice(0, 16).arrayBuffer())) ?? type ?? (fileOrBytes.type || null);
    } else {
      body = fileOrBytes instanceof ArrayBuffer ? new Uint8Array(fileOrBytes) : fileOrBytes;
      if (!(body instanceof Uint8Array)) throw new TypeError('upload: expected a File, Blob, Uint8Array or ArrayBuffer');
      t = sniffImageType(body) ?? type;
    }
    if (!t) throw new TypeError('upload: not a PNG, JPEG or WebP image, and no type given');
    return this._json('POST', '/v1/uploads', { body, type: t, signal });
  }

  /** GET /v1/uploads: {items, next_cursor}, newest first. */
  uploads({ limit, cursor, signal } = {}) {
    return this._json('GET', `/v1/uploads${this._query({ limit, cursor })}`, { signal });
  }

  /** DELETE /v1/uploads/{id}: resolves to null. */
  removeUpload(id, { signal } = {}) {
    return this._json('DELETE', `/v1/uploads/${encodeURIComponent(id)}`, { signal });
  }

  credits({ signal } = {}) {
    return this._json('GET', '/v1/credits', { signal });
  }

  /** GET /v1/credits/ledger: {items, next_cursor}, newest first. */
  ledger({ limit, cursor, signal } = {}) {
    return this._json('GET', `/v1/credits/ledger${this._query({ limit, cursor })}`, { signal });
  }

  presets({ signal } = {}) {
    return this._json('GET', '/v1/presets', { signal });
  }

  /**
   * A generation's events, as {id, type, data}, from the first (or after
   * `lastEventId`), ending after the terminal event. A dropped connection is
   * resumed with Last-Event-ID; no event is yielded twice. Resumed at (or
   * past) its terminal event, the watch ends without yielding (after asking
   * once more, to tell that from a stream the farm closed early). End a watch
   * early with `signal` (or break out of the loop): the connection closes.
   */
  watch(id, { lastEventId, signal } = {}) {
    return this._stream(`/v1/generations/${encodeURIComponent(id)}/events`, { lastEventId, signal, gen: id });
  }

  /** Every event of every generation of the caller; never ends by itself (break or abort). */
  watchAll({ lastEventId, signal } = {}) {
    return this._stream('/v1/events', { lastEventId, signal, gen: null });
  }

  async *_stream(path, { lastEventId, signal, gen }) {
    let last = lastEventId ?? null;
    let base = this.reconnectDelayMs;
    let failures = 0;
    let authRetried = false;
    let yielded = false; // by any connection of this watch
    let confirmed = false; // a resumed watch that met a finished generation asked again
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) ctl.abort(signal.reason);
    try {
      for (;;) {
        let res = null;
        let cause = null;
        let retryAfter = 0;
        try {
          res = await this._fetch(this.baseUrl + path, {
            headers: await this._headers({ Accept: 'text/event-stream', ...(last !== null ? { 'Last-Event-ID': last } : {}) }),
            signal: ctl.signal,
          });
        } catch (err) {
          if (ctl.signal.aborted) throw err;
          cause = new ApiError({ status: 0, code: 'network_error', message: String(err?.message ?? err) });
        }
        if (res && !res.ok) {
          const err = await this._error(res);
          if (res.status === 401 && this.getToken && !authRetried) {
            authRetried = true; // once: getToken may have a fresh one now
            continue;
          }
          // An unavailable farm (503, or 502 and 504 from a proxy in front of
          // it while its api restarts), and the cap on a user's open streams
          // (an old connection the server still counts), pass: they are waited out.
          if (!WAITED_OUT.includes(res.status)) throw err;
          cause = err;
          retryAfter = (err.retryAfter ?? 0) * 1000;
        } else if (res) {
          authRetried = false;
          let ended = false;
          let got = false; // by this connection
          const opened = Date.now();
          try {
            for await (const ev of parseEventStream(res.body)) {
              if (ev.retry !== undefined) {
                base = ev.retry;
                continue;
              }
              const terminal = gen !== null && TERMINAL_EVENTS.includes(ev.event);
              // An id at or before the cursor was seen, unless it is the end: the
              // farm sends a terminal event whose id it had used for another (its
              // queue's history went back) once, and it is news.
              if (ev.id !== null && last !== null && !idAfter(ev.id, last) && !(terminal && ev.id !== last)) continue;
              if (ev.id !== null) last = ev.id;
              let data;
              try {
                data = JSON.parse(ev.data);
              } catch {
                data = ev.data;
              }
              yielded = got = true;
              failures = 0; // a connection that delivers is not a failure, whatever came before
              yield { id: ev.id, type: ev.event, data };
              if (terminal) return;
            }
            ended = true;
          } catch (err) {
            if (ctl.signal.aborted) throw err;
            cause = new ApiError({ status: 0, code: 'network_error', message: String(err?.message ?? err) });
          }
          // A generation's stream that ended whole without its terminal event:
          // ended already (the cursor was at its end), or the farm closed it
          // to be resumed. GET tells which.
          if (ended && gen !== null) {
            let g = null;
            try {
              g = await this.getGeneration(gen, { signal: ctl.signal });
            } catch (err) {
              if (ctl.signal.aborted || !(err instanceof ApiError)) throw err;
              if (err.status !== 0 && !WAITED_OUT.includes(err.status)) throw err;
              cause = err; // the farm is restarting, say: waited out like the stream
              retryAfter = (err.retryAfter ?? 0) * 1000;
            }
            if (g && TERMINAL_EVENTS.includes(g.status)) {
              if (yielded || lastEventId == null) {
                yield { id: last, type: g.status, data: g };
                return;
              }
              // Resumed by the caller and nothing came: the cursor may be at the
              // terminal event (nothing more to say), or the farm closed the
              // stream before Postgres had the end GET shows now (the queue ends
              // some jobs first: an expiry, a dead letter). One more connection
              // tells: the farm sends the terminal event unless the cursor is at it.
              if (confirmed) return;
              confirmed = true;
              continue;
            }
          }
          // A stream the farm ended at once, before any event (Redis down at
          // its start, say), counts as a failure: clients back off, with
          // jitter, instead of all reconnecting at the server's retry: in
          // step. One that stayed open longer than the longest wait (a quiet
          // user's stream a proxy's idle timeout ended) is no failure.
          if (ended && !got && !cause) {
            if (Date.now() - opened < this.maxReconnectDelayMs) {
              cause = new ApiError({ status: 0, code: 'network_error', message: 'the event stream ended before any event' });
            } else {
              failures = 0;
            }
          }
        }
        if (cause) failures++;
        const delay = Math.max(failures ? this._backoff(base, failures) : base, retryAfter);
        if (cause) this._retrying(cause, delay);
        await sleep(delay, ctl.signal);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      ctl.abort();
    }
  }
}
