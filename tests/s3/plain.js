// tests/s3/plain.js ADDRESS PORT DIR BUCKET... : s3rver alone (no signature
// gateway: see server.js for that) on ADDRESS:PORT, objects under DIR, the
// buckets named created, folders kept (keep-folders.js). The multi-container
// deployment test runs it in a container of its own. SIGTERM closes it.
'use strict';
const S3rver = require('s3rver');
const keepFolders = require('./keep-folders');

const [address, port, directory, ...buckets] = process.argv.slice(2);
if (!address || !port || !directory) {
  console.error('usage: plain.js ADDRESS PORT DIR BUCKET...');
  process.exit(2);
}

const s3 = keepFolders(new S3rver({
  address, port: Number(port), directory, silent: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
}));
s3.run().then(() => console.log('ready'), (err) => {
  console.error(err);
  process.exit(1);
});
process.on('SIGTERM', () => s3.close().then(() => process.exit(0)));
