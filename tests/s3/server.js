// tests/s3/server.js PORT DIR BUCKET... : an S3 server for the tests on
// 127.0.0.1:PORT (and [::1]:PORT when the machine has IPv6, for an IPv6
// literal endpoint), objects kept under DIR, the buckets named created.
//
// s3rver (3.7.1) serves the S3 API but does not check SigV4 signatures, so a
// gateway in front of it does, with the AWS SDK's own signer
// (@smithy/signature-v4), before passing the request on:
// - Authorization headers and presigned URLs (X-Amz-*; an expired one is
//   refused), for the credentials S3RVER / S3RVER;
// - the body against x-amz-content-sha256, x-amz-checksum-sha256 and
//   Content-MD5 when they are sent.
// Refusals are S3's error documents (403 SignatureDoesNotMatch, 400
// BadDigest...). Virtual-hosted requests go to BUCKET.s3.localhost:PORT.
// Folders a DELETE empties are kept (keep-folders.js).
// Prints "ready" once it listens; SIGTERM closes it.
'use strict';
const crypto = require('crypto');
const http = require('http');
const S3rver = require('s3rver');
const keepFolders = require('./keep-folders');
const { SignatureV4 } = require('@smithy/signature-v4');

const ACCOUNTS = { S3RVER: 'S3RVER' };

const [port, directory, ...buckets] = process.argv.slice(2);
if (!port || !directory) {
  console.error('usage: server.js PORT DIR BUCKET...');
  process.exit(2);
}

class Sha256 {
  constructor(secret) {
    this.h = secret ? crypto.createHmac('sha256', Buffer.from(secret)) : crypto.createHash('sha256');
  }
  update(d) {
    this.h.update(typeof d === 'string' ? Buffer.from(d, 'utf8') : Buffer.from(d));
  }
  async digest() {
    return new Uint8Array(this.h.digest());
  }
}

class Refused extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const amzDate = (s) => {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s || '');
  if (!m) throw new Refused(403, 'AccessDenied', 'bad X-Amz-Date');
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
};

// "AK/20130524/us-east-1/s3/aws4_request" -> its parts and the signer.
function signerFor(credential) {
  const [ak, , region, service, term] = (credential || '').split('/');
  if (!(ak in ACCOUNTS)) throw new Refused(403, 'InvalidAccessKeyId', `unknown key ${ak}`);
  if (term !== 'aws4_request') throw new Refused(403, 'AuthorizationQueryParametersError', 'bad scope');
  const signer = new SignatureV4({
    credentials: { accessKeyId: ak, secretAccessKey: ACCOUNTS[ak] },
    region, service, sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  return { signer, region, service };
}

function splitUrl(req) {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = {};
  if (q >= 0) {
    for (const part of req.url.slice(q + 1).split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      query[k] = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    }
  }
  return { path, query };
}

function requestFor(req, path, query, signedHeaders) {
  const headers = {};
  for (const name of signedHeaders) {
    const v = req.headers[name];
    if (v === undefined) throw new Refused(403, 'SignatureDoesNotMatch', `signed header ${name} missing`);
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  return { method: req.method, protocol: 'http:', hostname: 'unused', path, query, headers };
}

async function verify(req, body) {
  const { path, query } = splitUrl(req);
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) throw new Refused(400, 'InvalidArgument', 'unsupported Authorization header');
    const { signer, region, service } = signerFor(m[1]);
    const signed = m[2].split(';');
    const date = amzDate(req.headers['x-amz-date']);
    const sreq = requestFor(req, path, query, signed);
    const out = await signer.sign(sreq, { signingDate: date, signingRegion: region, signingService: service });
    const want = /Signature=([0-9a-f]{64})/.exec(out.headers.authorization)[1];
    if (want !== m[3]) throw new Refused(403, 'SignatureDoesNotMatch', 'the signature does not match');
    if (Math.abs(Date.now() - date.getTime()) > 15 * 60 * 1000)
      throw new Refused(403, 'RequestTimeTooSkewed', 'the request time is too far from ours');
  } else if (query['X-Amz-Signature']) {
    const { signer, region, service } = signerFor(query['X-Amz-Credential']);
    const date = amzDate(query['X-Amz-Date']);
    const expires = Number(query['X-Amz-Expires']);
    if (!(expires >= 1 && expires <= 604800)) throw new Refused(403, 'AuthorizationQueryParametersError', 'bad X-Amz-Expires');
    if (Date.now() > date.getTime() + expires * 1000) throw new Refused(403, 'AccessDenied', 'Request has expired');
    const rest = {};
    for (const [k, v] of Object.entries(query)) if (!k.startsWith('X-Amz-')) rest[k] = v;
    const sreq = requestFor(req, path, rest, query['X-Amz-SignedHeaders'].split(';'));
    // A presigned S3 URL signs no payload (what the SDK's own presigner does).
    sreq.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    const out = await signer.presign(sreq, {
      signingDate: date, expiresIn: expires, signingRegion: region, signingService: service,
      unsignableHeaders: new Set(['x-amz-content-sha256']),
      unhoistableHeaders: new Set(['x-amz-content-sha256']),
    });
    if (out.query['X-Amz-Signature'] !== query['X-Amz-Signature'])
      throw new Refused(403, 'SignatureDoesNotMatch', 'the signature does not match');
  } else {
    throw new Refused(403, 'AccessDenied', 'anonymous requests are refused');
  }
  const sha = req.headers['x-amz-content-sha256'];
  if (sha && sha !== 'UNSIGNED-PAYLOAD' && !sha.startsWith('STREAMING-')
      && crypto.createHash('sha256').update(body).digest('hex') !== sha)
    throw new Refused(400, 'XAmzContentSHA256Mismatch', 'the body does not match x-amz-content-sha256');
  const csum = req.headers['x-amz-checksum-sha256'];
  if (csum && crypto.createHash('sha256').update(body).digest('base64') !== csum)
    throw new Refused(400, 'BadDigest', 'the body does not match x-amz-checksum-sha256');
  const md5 = req.headers['content-md5'];
  if (md5 && crypto.createHash('md5').update(body).digest('base64') !== md5)
    throw new Refused(400, 'BadDigest', 'the body does not match Content-MD5');
}

async function main() {
  const s3 = keepFolders(new S3rver({
    address: '127.0.0.1', port: 0, directory, silent: true, serviceEndpoint: 'localhost',
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  }));
  const inner = await s3.run();
  const serve = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      verify(req, body).then(() => {
        // s3rver takes an IPv6 literal Host ("[::1]:PORT": koa keeps the brackets, which
        // net.isIP refuses) for a virtual-hosted bucket; the signature, checked above with
        // the Host as sent, is all that Host is for, so s3rver gets a path-style one.
        const headers = (req.headers.host || '').startsWith('[')
          ? { ...req.headers, host: `127.0.0.1:${port}` } : req.headers;
        const fwd = http.request({
          host: '127.0.0.1', port: inner.port, method: req.method, path: req.url, headers,
        }, (up) => {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        });
        fwd.on('error', () => { res.writeHead(502); res.end(); });
        fwd.end(body);
      }, (err) => {
        const status = err instanceof Refused ? err.status : 500;
        const code = err instanceof Refused ? err.code : 'InternalError';
        const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${err.message}</Message></Error>`;
        res.writeHead(status, { 'Content-Type': 'application/xml' });
        res.end(req.method === 'HEAD' ? undefined : xml);
      });
    });
  };
  const gateway = http.createServer(serve);
  // The same gateway on [::1], when the machine has IPv6; a test that needs it finds
  // it missing by not connecting.
  const gateway6 = http.createServer(serve);
  gateway6.on('error', (err) => console.error(`s3 server: not on [::1]: ${err.message}`));
  gateway6.listen(Number(port), '::1');
  gateway.listen(Number(port), '127.0.0.1', () => console.log('ready'));
  process.on('SIGTERM', () => {
    gateway.close();
    gateway6.close();
    s3.close().then(() => process.exit(0));
  });
}

main().catch((err) => {
  console.error(`s3 server: ${err.message}`);
  process.exit(1);
});
