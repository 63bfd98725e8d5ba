# shellcheck shell=bash
#
# scripts/bench.d/imaging.sh: `scripts/bench imaging`, the avatar
# post-process (img_variants_make: full WebP + 512 + 256 + thumb) on a
# 1024x1024 PNG made here with `vips`, from one thread and from one thread
# per core (bench_imaging, vips concurrency 1 per pipeline as in the
# worker), then vipsthumbnail making the 512 attention-cropped WebP from the
# same file (one process, 20 files per run, vips' default threads), and
# sharp (tests/sharp/variants.mjs: the npm package Lumiku used, on its own
# bundled libvips) making our four variants at our settings from one
# thread. Each of the four runs for BENCH_DURATION (10s). Prints one line:
#
#   imaging: <N> img/s (1 thread), <M> img/s (all) | sharp <S> img/s (1 thread), ours <R>x | vipsthumbnail <K> img/s
#
# (N, M, S, K with 1 decimal; R = N / S, the goal of issue #22 is R >= 1.0.)
# Knobs: BENCH_DURATION, FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_imaging; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

# imaging_png DIR : make DIR/in.png, 1024x1024 sRGB: smooth bands (sines and a
# zone plate) with mild noise, so it compresses and crops like a picture.
imaging_png() {
    local d=$1
    vips sines "$d/a.v" 1024 1024 --hfreq 3 --vfreq 2 &&
        vips linear "$d/a.v" "$d/a8.v" 127.5 127.5 --uchar &&
        vips zone "$d/z.v" 1024 1024 &&
        vips linear "$d/z.v" "$d/z8.v" 127.5 127.5 --uchar &&
        vips gaussnoise "$d/n.v" 1024 1024 --mean 128 --sigma 12 &&
        vips cast "$d/n.v" "$d/n8.v" uchar &&
        vips bandjoin "$d/a8.v $d/z8.v $d/n8.v" "$d/rgb.v" &&
        vips copy "$d/rgb.v" "$d/in.png" --interpretation srgb
}

bench_imaging() {
    bench_prepare vips vipsthumbnail node
    [[ -x $bin/bench_imaging ]] || gf_die "$bin/bench_imaging is missing"
    local secs=${BENCH_DURATION:-10s} cores tmp one all sharp t0 t1 n=0 batch=20 i
    secs=${secs%s}
    cores=$(nproc)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-imaging.XXXXXX")
    # Global for the EXIT trap (locals are gone when it runs).
    imaging_tmp=$tmp
    trap 'rm -rf "$imaging_tmp"' EXIT
    imaging_png "$tmp" >"$tmp/vips.log" 2>&1 || gf_die "vips failed: $(tail -n 5 "$tmp/vips.log")"

    gf_info "bench_imaging: 1 thread, ${secs}s"
    one=$("$bin/bench_imaging" "$tmp/in.png" 1 "$secs") || gf_die "bench_imaging failed"
    gf_info "sharp, 1 thread, ${secs}s"
    [[ -d $root/tests/sharp/node_modules/sharp ]] ||
        gf_die "tests/sharp/node_modules is missing: run scripts/install-deps"
    sharp=$(cd "$root/tests/sharp" && UV_THREADPOOL_SIZE=1 node variants.mjs "$tmp/in.png" "$secs") ||
        gf_die "sharp failed (it needs Node >= 20.9)"
    gf_info "bench_imaging: $cores threads, ${secs}s"
    all=$("$bin/bench_imaging" "$tmp/in.png" "$cores" "$secs") || gf_die "bench_imaging failed"

    # vipsthumbnail: batches of $batch files per process until the time is up.
    local files=()
    for ((i = 0; i < batch; i++)); do files+=("$tmp/in.png"); done
    mkdir -p "$tmp/out"
    gf_info "vipsthumbnail -s 512x512 -m attention, ${secs}s"
    t0=$(date +%s.%N)
    while :; do
        vipsthumbnail "${files[@]}" -s 512x512 -m attention \
            -o "$tmp/out/%s_512.webp[Q=85,strip]" || gf_die "vipsthumbnail failed"
        n=$((n + batch))
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" -v s="$secs" 'BEGIN { exit !(b - a >= s) }' && break
    done
    awk -v one="$one" -v all="$all" -v sharp="$sharp" -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {
        split(one, o, " "); split(all, m, " "); split(sharp, s, " ")
        printf "imaging: %.1f img/s (1 thread), %.1f img/s (all) | sharp %.1f img/s (1 thread), ours %.2fx | vipsthumbnail %.1f img/s\n",
            o[1] / o[2], m[1] / m[2], s[1] / s[2], (o[1] / o[2]) / (s[1] / s[2]), n / (b - a)
    }'
}
