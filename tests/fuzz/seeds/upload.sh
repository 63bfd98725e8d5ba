#!/usr/bin/env bash
# tests/fuzz/seeds/upload.sh [OUT]: writes corpus/upload/, small images made
# with the vips CLI (libvips-tools) in every format and shape an upload may
# take - PNG (grey, RGBA, 16-bit), JPEG (CMYK, EXIF-rotated, progressive),
# WebP (lossy, lossless) - and the broken ones the checks must refuse:
# truncated, a header declaring 60000x60000, a GIF.
set -euo pipefail
out=${1:-$(dirname "$0")/../corpus/upload}
mkdir -p "$out"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
vips black "$t/black.v" 24 16 --bands 3
vips linear "$t/black.v" "$t/rgb.v" 1 90 --uchar
vips xyz "$t/xyz.v" 24 16
vips extract_band "$t/xyz.v" "$t/x.v" 0
vips cast "$t/x.v" "$t/grey.v" uchar
vips bandjoin "$t/rgb.v $t/grey.v" "$t/rgba.v"
vips copy "$t/rgb.v" "$out/rgb.png"
vips copy "$t/grey.v" "$out/grey.png"
vips copy "$t/rgba.v" "$out/rgba.png"
vips cast "$t/rgb.v" "$t/rgb16.v" ushort
vips copy "$t/rgb16.v" "$out/rgb16.png[bitdepth=16]"
vips copy "$t/rgb.v" "$out/rgb.jpg[Q=80,strip]"
vips copy "$t/rgb.v" "$out/progressive.jpg[interlace,strip]"
vips copy "$t/grey.v" "$out/grey.jpg[strip]"
vips colourspace "$t/rgb.v" "$t/cmyk.v" cmyk
vips copy "$t/cmyk.v" "$out/cmyk.jpg[strip]"
# EXIF orientation 6 (rotate 90): an APP1 segment with that one tag after the JPEG's SOI.
python3 - "$out/rgb.jpg" "$out/exif_rotated.jpg" <<'PY'
import struct, sys
jpg = open(sys.argv[1], "rb").read()
tiff = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1)
tiff += struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
app1 = b"Exif\0\0" + tiff
open(sys.argv[2], "wb").write(jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:])
PY
[[ $(vipsheader -f orientation "$out/exif_rotated.jpg") == 6 ]]
vips copy "$t/rgb.v" "$out/lossy.webp[Q=70,strip]"
vips copy "$t/rgba.v" "$out/lossless.webp[lossless,strip]"
head -c 60 "$out/rgb.png" >"$out/truncated.png"
head -c 300 "$out/rgb.jpg" >"$out/truncated.jpg"
# A PNG whose IHDR says 60000x60000 (the CRC is left wrong: the header check comes first).
python3 - "$out/rgb.png" "$out/huge_header.png" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[16:24] = struct.pack(">II", 60000, 60000)
open(sys.argv[2], "wb").write(b)
PY
vips copy "$t/rgb.v" "$out/not_allowed.gif" 2>/dev/null || printf 'GIF89a\x01\x00\x01\x00\x00\x00\x00;' >"$out/not_allowed.gif"
