# shellcheck shell=bash
#
# scripts/bench.d/storage.sh: `scripts/bench storage`, object storage. First
# bench_storage (tests/bench/bench_storage.c): BENCH_STORAGE_IMAGES (200)
# images, each its four avatar variants (full WebP, 512, 256, thumb of a
# 1024x1024 image) put then got back through storage/, 8 images in flight,
# on the `s3` backend against the local S3 server of the tests
# (tests/s3/server.js: s3rver behind its SigV4-checking gateway) and on the
# `local` backend (a directory), in the same run. Then `scripts/bench e2e`'s
# 2 workers x 64 run (BENCH_E2E_JOBS generations on the fake provider at
# 2 s) with FARM_STORAGE=local and with FARM_STORAGE=s3, each on fresh
# servers. Prints:
#
#   storage: s3 <N> img/s | local <M> img/s (4 variants put then get, 8 in flight)
#   storage_cpu: s3 client <a> s, S3 server <b> s | local client <c> s
#   e2e_local: <N> completions/min, … (scripts/bench e2e's fields)
#   e2e_local_cpu: workers <a> s, api <b> s
#   e2e_s3: <N> completions/min, … (the same fields)
#   e2e_s3_cpu: workers <a> s, api <b> s, S3 server <c> s
#   e2e_s3/e2e_local: <R>x (the goal is 0.9 or more)
#
# The _cpu lines are CPU seconds (user + system) each process used in that
# run: the farm's own (client) side against the S3 server's (s3rver and its
# signature-checking gateway, node, on the same cores), so a gap between the
# two e2e lines can be put where it belongs.
#
# Knobs: BENCH_STORAGE_IMAGES, BENCH_E2E_JOBS, FARM_LOG_LEVEL, FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_storage; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"
# shellcheck source=scripts/bench.d/e2e.sh
. "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"

# storage_run ENV... : bench_storage's images/s with ENV added; its CPU
# seconds in storage_client_cpu.
storage_run() {
    local out rc=0
    out=$(mktemp "${TMPDIR:-/tmp}/genfarm-bench-storage-time.XXXXXXXX")
    # shellcheck disable=SC2016  # the inner bash expands $0 and $@
    env "$@" FARM_PRESETS_DIR="$root/imaging/presets" FARM_LOG_LEVEL=warn \
        bash -c 'TIMEFORMAT="%U %S"; { time "$@" 2>&3; } 3>&2 2>"$0"' "$out" \
        "$bin/bench_storage" "${BENCH_STORAGE_IMAGES:-200}" 8 || rc=$?
    storage_client_cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$out")
    rm -f "$out"
    return "$rc"
}

# cpu_s PID... : the CPU seconds (user + system) those live processes used, summed, 1 decimal.
cpu_s() {
    local pid tck
    tck=$(getconf CLK_TCK)
    for pid in "$@"; do
        awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0
    done | awk -v tck="$tck" '{ t += $1 } END { printf "%.1f", t / tck }'
}

bench_storage() {
    bench_prepare node curl psql
    [[ -x $bin/bench_storage ]] || gf_die "$bin/bench_storage is missing"
    [[ -d $root/tests/s3/node_modules/s3rver ]] || gf_die "tests/s3/node_modules is missing"
    local tmp port s3_pid s3 local_rate
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/genfarm-bench-storage.XXXXXXXX")
    port=$(gf_port_pick)
    node "$root/tests/s3/server.js" "$port" "$tmp/s3" farm >"$tmp/s3.log" 2>&1 &
    s3_pid=$!
    # shellcheck disable=SC2064  # expand now: the locals are gone when it runs
    trap "gf_stop_pid $s3_pid TERM 5; rm -rf '$tmp'" EXIT
    gf_wait_http "http://127.0.0.1:$port/" 403 20 "$s3_pid" || gf_die "the S3 server did not start"
    gf_info "storage: s3 on 127.0.0.1:$port"
    local s3_client_cpu s3_server_cpu
    storage_run FARM_STORAGE=s3 FARM_S3_ENDPOINT="http://127.0.0.1:$port" FARM_S3_BUCKET=farm \
        FARM_S3_ACCESS_KEY_ID=S3RVER FARM_S3_SECRET_ACCESS_KEY=S3RVER >"$tmp/s3.rate"
    s3=$(cat "$tmp/s3.rate")
    s3_client_cpu=$storage_client_cpu
    s3_server_cpu=$(cpu_s "$s3_pid")
    gf_info "storage: local in $tmp/local"
    storage_run FARM_STORAGE=local FARM_STORAGE_DIR="$tmp/local" >"$tmp/local.rate"
    local_rate=$(cat "$tmp/local.rate")
    printf 'storage: s3 %s img/s | local %s img/s (4 variants put then get, 8 in flight)\n' \
        "$s3" "$local_rate"
    printf 'storage_cpu: s3 client %s s, S3 server %s s | local client %s s\n' \
        "$s3_client_cpu" "$s3_server_cpu" "$storage_client_cpu"
    gf_stop_pid "$s3_pid" TERM 5
    trap - EXIT
    rm -rf "$tmp"

    local out_local out_s3
    out_local=$(bench_with_servers --migrate "${BASH_SOURCE[0]}" storage_e2e_in_fixture local)
    printf '%s\n' "$out_local"
    out_s3=$(FARM_TEST_S3=1 bench_with_servers --migrate "${BASH_SOURCE[0]}" storage_e2e_in_fixture s3)
    printf '%s\n' "$out_s3"
    out_local=$(head -n 1 <<<"$out_local")
    out_s3=$(head -n 1 <<<"$out_s3")
    awk -v a="$out_s3" -v b="$out_local" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        if (y[2] > 0) printf "e2e_s3/e2e_local: %.2fx\n", x[2] / y[2] }'
}

# storage_e2e_in_fixture local|s3 : e2e's 2 x 64 run on that storage, then
# the CPU seconds of its processes (read before bench_e2e_in_fixture's
# EXIT trap stops them).
storage_e2e_in_fixture() {
    local s3_pid=''
    if [[ $1 == s3 ]]; then
        s3_pid=$(cat "$FARM_TEST_TMPDIR/s3.pid")
        export FARM_STORAGE=s3 FARM_S3_ENDPOINT=$FARM_TEST_S3_ENDPOINT FARM_S3_BUCKET=farm \
            FARM_S3_ACCESS_KEY_ID=S3RVER FARM_S3_SECRET_ACCESS_KEY=S3RVER
    fi
    bench_e2e_in_fixture 2 64 "e2e_$1"
    # e2e_pids: the fake provider, the api, then the workers.
    printf 'e2e_%s_cpu: workers %s s, api %s s%s\n' "$1" "$(cpu_s "${e2e_pids[@]:2}")" \
        "$(cpu_s "${e2e_pids[1]}")" "${s3_pid:+, S3 server $(cpu_s "$s3_pid") s}"
}
