# shellcheck shell=bash
#
# scripts/bench.d/sse.sh: `scripts/bench sse`, BENCH_SSE_STREAMS (10,000)
# event streams on one generation from one client process (sse_fanout),
# the api's RSS growth per stream, then one progress event published and
# its delivery latency across them all. Prints one line:
#
#   sse: <C> streams, <B> bytes/stream, fan-out p50 <a> ms p99 <b> ms
#
# (C = streams connected; a, b with 1 decimal.) Warns on stderr when not
# every stream got every event. Knobs: BENCH_SSE_STREAMS, FARM_LOG_LEVEL
# (the api's, warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_sse; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_sse() {
    bench_prepare
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_sse_in_fixture
}

# Runs inside tests/fixture/with-servers (bench_with_servers).
bench_sse_in_fixture() {
    local tmp=$FARM_TEST_TMPDIR n=${BENCH_SSE_STREAMS:-10000} api_port tok out
    bench_clear_test_env
    ulimit -n "$(ulimit -Hn)"
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 FARM_SSE_MAX_PER_USER=100000 FARM_RATE_LIMITS=reads=1000000/1000000 \
        FARM_HTTP_MAX_CONNECTIONS=100000 FARM_API_PROCESSES=1 FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn}
    api_pid=''
    trap '[[ -n $api_pid ]] && gf_stop_pid "$api_pid" TERM 20; true' EXIT
    api_port=$(gf_port_pick)
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    api_pid=$!
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api_pid" ||
        gf_die "farm-api did not become ready"
    tok=$("$bin/farm" token --sub 00000000-0000-4000-8000-00000000055e --plan pro --ttl 3600)
    gf_info "sse: $n streams"
    out=$("$bin/sse_fanout" "http://127.0.0.1:$api_port" "$tok" "$n" "$api_pid") ||
        gf_warn "not every stream got every event: $out"
    awk '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1)
           printf "sse: %d streams, %d bytes/stream, fan-out p50 %.1f ms p99 %.1f ms\n",
               v["connected"], v["rss_per_stream"], v["p50_ms"], v["p99_ms"] }' <<<"$out"
}
