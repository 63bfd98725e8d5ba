// tests/sharp/variants.mjs - the imaging baseline of `scripts/bench imaging`:
// sharp (the npm package Lumiku used, on its own bundled libvips) making our
// four avatar variants at our settings from the same PNG, from one thread:
//   full   WebP Q85 effort 2, the whole image
//   512    WebP Q85 effort 2, 512x512 attention-cropped cover
//   256    WebP Q85 effort 2, cut from the 512
//   thumb  JPEG Q80, fitting 128x128, standard Huffman tables (libvips'
//          jpegsave default, which the farm uses; sharp's own default
//          optimises them, an extra pass, so it is set off here)
// The PNG is decoded once per image into raw pixels, as the farm does.
// Metadata is dropped (sharp's default). Prints "<images> <seconds>".
//
//   UV_THREADPOOL_SIZE=1 node variants.mjs IN.png SECONDS [OUTDIR]
//
// OUTDIR, when given, receives one set of the variants (to compare sizes).
import { readFileSync, writeFileSync } from "node:fs";
import sharp from "sharp";

const [input, seconds, outdir] = process.argv.slice(2);
if (!input || !(Number(seconds) > 0)) {
  console.error("usage: node variants.mjs IN.png SECONDS [OUTDIR]");
  process.exit(2);
}
sharp.concurrency(1);
sharp.cache(false);
const png = readFileSync(input);
const webp = { quality: 85, effort: 2 };

async function fromRaw(raw, info) {
  return sharp(raw, { raw: { width: info.width, height: info.height, channels: info.channels } });
}

async function once() {
  const { data: raw, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const full = await (await fromRaw(raw, info)).webp(webp).toBuffer();
  const r512 = await (await fromRaw(raw, info))
    .resize(512, 512, { fit: "cover", position: "attention" })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const v512 = await (await fromRaw(r512.data, r512.info)).webp(webp).toBuffer();
  const v256 = await (await fromRaw(r512.data, r512.info))
    .resize(256, 256, { fit: "cover", position: "attention" })
    .webp(webp)
    .toBuffer();
  const thumb = await (await fromRaw(raw, info))
    .resize(128, 128, { fit: "inside" })
    .jpeg({ quality: 80, optimiseCoding: false })
    .toBuffer();
  return { full, v512, v256, thumb };
}

const first = await once();
if (outdir)
  for (const [k, v] of Object.entries(first)) writeFileSync(`${outdir}/sharp-${k}`, v);
const t0 = process.hrtime.bigint();
let n = 0;
for (;;) {
  await once();
  n++;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s >= Number(seconds)) {
    console.log(`${n} ${s.toFixed(3)}`);
    break;
  }
}
