// tests/s3/keep-folders.js: makes an s3rver (3.7.1) instance keep the
// folders a DELETE leaves empty.
//
// s3rver keeps each object in a folder of its key's path. After a DELETE it
// removes the folders that became empty, while a PUT into the same folder
// may be between creating it and opening its file there: that open fails in
// a stream with no error handler, and the whole server exits. The farm does
// exactly that when a new attempt writes a generation's files while the
// stale attempt's files beside them are dropped (several workers, one S3).
// S3 itself has no folders, so keeping them changes nothing a client sees:
// listings walk files, and an empty folder holds none.
'use strict';
const fs = require('fs');

module.exports = function keepFolders(s3) {
  const store = s3.store;
  store.deleteObject = async function deleteObject(bucket, key) {
    await Promise.all(['object', 'object.md5', 'metadata.json'].map((part) =>
      fs.promises.unlink(this.getResourcePath(bucket, key, part)).catch((err) => {
        if (err.code !== 'ENOENT') throw err;
      })));
  };
  return s3;
};
