# shellcheck shell=bash
#
# scripts/bench.d/edge.sh: `scripts/bench edge`, farm-api under hostile
# clients (edge_load): (a) 50 connections pipelining GET /metrics they never
# read, for BENCH_EDGE_SECONDS (30); (b) 500 concurrent unauthenticated
# 10 MiB uploads (BENCH_EDGE_UPLOADS). During both a normal client GETs
# /healthz and a signed pose-map file, one after the other. Prints two lines:
#
#   edge_pipeline: api RSS +<m> MiB, normal client p50 <a> ms p99 <b> ms (<n> requests, <k> failed)
#   edge_uploads: <u> refused of <U>, api RSS +<m> MiB, normal client p50 <a> ms p99 <b> ms (...)
#
# Goals (issue #21): RSS growth <= 64 MiB in each, the normal client's
# p99 <= 20 ms. Knobs: BENCH_EDGE_SECONDS, BENCH_EDGE_UPLOADS,
# FARM_LOG_LEVEL (warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_edge; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_edge() {
    bench_prepare curl node
    [[ -x $bin/farm-api && -x $bin/edge_load ]] || gf_die "$bin/farm-api or edge_load is missing"
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_edge_in_fixture
}

# Runs inside tests/fixture/with-servers (bench_with_servers).
bench_edge_in_fixture() {
    local tmp=$FARM_TEST_TMPDIR api_port file out tok
    bench_clear_test_env
    ulimit -n "$(ulimit -Hn)"
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 \
        FARM_API_PROCESSES=1 FARM_PRESETS_DIR="$root/imaging/presets" FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn}
    api_pid=''
    trap '[[ -n $api_pid ]] && gf_stop_pid "$api_pid" TERM 20; true' EXIT
    api_port=$(gf_port_pick)
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    api_pid=$!
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api_pid" ||
        gf_die "farm-api did not become ready: $(tail -n 20 "$tmp/api.log")"
    # A signed file URL of the api: the first pose map of the presets (a user's view).
    tok=$("$bin/farm" token --sub 00000000-0000-4000-8000-0000000000e1 --ttl 3600)
    file=$(curl -fsS -H "Authorization: Bearer $tok" "http://127.0.0.1:$api_port/v1/presets" | node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
            const u = new URL(JSON.parse(s).poses[0].map_url, "http://x");
            console.log(u.pathname + u.search);
        })')
    [[ $file == /v1/* ]] || gf_die "no signed pose map URL in /v1/presets"
    # The pose map is rendered once per api process, at its first GET: not during the load.
    curl -fsS -o /dev/null "http://127.0.0.1:$api_port$file" || gf_die "the signed pose map did not load"
    gf_info "edge: pipelining for ${BENCH_EDGE_SECONDS:-30} s"
    out=$("$bin/edge_load" "$api_port" "$api_pid" pipeline "${BENCH_EDGE_SECONDS:-30}" "$file")
    edge_print edge_pipeline "$out"
    # A fresh api for the uploads: RSS growth of one load, not of both.
    gf_stop_pid "$api_pid" TERM 20
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >>"$tmp/api.log" 2>&1 &
    api_pid=$!
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api_pid" || gf_die "farm-api did not restart"
    curl -fsS -o /dev/null "http://127.0.0.1:$api_port$file" || gf_die "the signed pose map did not load"
    gf_info "edge: ${BENCH_EDGE_UPLOADS:-500} unauthenticated 10 MiB uploads"
    out=$("$bin/edge_load" "$api_port" "$api_pid" uploads "${BENCH_EDGE_UPLOADS:-500}" "$file")
    edge_print edge_uploads "$out"
}

# edge_print NAME LINE : the result line of one edge_load run.
edge_print() {
    local -A f
    local name=$1 k v
    # shellcheck disable=SC2086  # edge_load prints "key value" pairs
    set -- ${2#* }
    while (($# >= 2)); do
        k=$1 v=$2
        f[$k]=$v
        shift 2
    done
    if [[ $name == edge_uploads ]]; then
        printf 'edge_uploads: %d refused of %d, api RSS +%s MiB, normal client p50 %s ms p99 %s ms (%d requests, %d failed)\n' \
            "${f[answered]}" "${f[sent]}" "${f[rss_growth_mib]}" "${f[normal_p50_ms]}" \
            "${f[normal_p99_ms]}" "${f[normal_requests]}" "${f[normal_bad]}"
    else
        printf 'edge_pipeline: api RSS +%s MiB, normal client p50 %s ms p99 %s ms (%d requests, %d failed)\n' \
            "${f[rss_growth_mib]}" "${f[normal_p50_ms]}" "${f[normal_p99_ms]}" \
            "${f[normal_requests]}" "${f[normal_bad]}"
    fi
}
