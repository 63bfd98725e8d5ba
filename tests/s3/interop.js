// tests/s3/interop.js: the AWS SDK for JavaScript, a second S3 client, checks
// what the farm stored and stores what the farm must read, so the farm's
// signing meets an implementation that is not ours (s3rver being the other).
//
//   interop.js get KEY SHA256   reads KEY back; fails unless its SHA-256 is SHA256
//   interop.js put KEY FILE     stores FILE's bytes under KEY
//   interop.js absent KEY       fails unless KEY is gone (404)
//
// From the environment: FARM_S3_ENDPOINT, FARM_S3_REGION, FARM_S3_BUCKET,
// FARM_S3_PREFIX, FARM_S3_ACCESS_KEY_ID, FARM_S3_SECRET_ACCESS_KEY.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const {
  S3Client, GetObjectCommand, PutObjectCommand, HeadObjectCommand,
} = require('@aws-sdk/client-s3');

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const client = new S3Client({
  endpoint: env('FARM_S3_ENDPOINT'),
  region: process.env.FARM_S3_REGION || 'us-east-1',
  forcePathStyle: true,
  credentials: {
    accessKeyId: env('FARM_S3_ACCESS_KEY_ID'),
    secretAccessKey: env('FARM_S3_SECRET_ACCESS_KEY'),
  },
});
const Bucket = env('FARM_S3_BUCKET');
const full = (key) => (process.env.FARM_S3_PREFIX || '') + key;

async function main(op, key, arg) {
  if (op === 'get') {
    const out = await client.send(new GetObjectCommand({ Bucket, Key: full(key) }));
    const body = Buffer.from(await out.Body.transformToByteArray());
    const sha = crypto.createHash('sha256').update(body).digest('hex');
    if (sha !== arg) throw new Error(`${key}: sha256 ${sha}, expected ${arg}`);
    console.log(`${key}: ${body.length} bytes, sha256 ok`);
  } else if (op === 'put') {
    const body = fs.readFileSync(arg);
    await client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body }));
    console.log(`${key}: stored ${body.length} bytes`);
  } else if (op === 'absent') {
    try {
      await client.send(new HeadObjectCommand({ Bucket, Key: full(key) }));
    } catch (err) {
      if (err.$metadata && err.$metadata.httpStatusCode === 404) return;
      throw err;
    }
    throw new Error(`${key} is still there`);
  } else {
    throw new Error('usage: interop.js get KEY SHA256 | put KEY FILE | absent KEY');
  }
}

main(...process.argv.slice(2)).catch((err) => {
  console.error(`interop: ${err.message}`);
  process.exit(1);
});
