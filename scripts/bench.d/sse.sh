# shellcheck shell=bash
#
# scripts/bench.d/sse.sh: `scripts/bench sse`, BENCH_SSE_STREAMS (15,000)
# event streams from one client process (sse_fanout) on one api process:
# 1,000 of them on one generation, 10,000 on another and the rest on a
# third. Measures the api's RSS growth per stream once all are open and
# idle, then publishes one progress event to the 1,000 and, after it, one
# to the 10,000, each fan-out's delivery latency measured alone: from the
# publish to the kernel's receive time in each listener's socket
# (SO_TIMESTAMPNS); the client reads the sockets once all of the group have
# data waiting (or a check, each millisecond, finds none newly readable), so
# its reads neither queue up in the figure nor take a core from the api
# meanwhile (tests/bench/sse_fanout.c). Prints one line:
#
#   sse: <C> streams, <B> bytes/stream, fan-out to 1000: p50 <a> ms p99 <b> ms, to 10000: p50 <c> ms p99 <d> ms
#
# (C = streams connected; a..d with 1 decimal.) With BENCH_SSE_STREAMS of
# 11,000 or less, the streams are one group on one generation and the line
# names its size instead. Needs BENCH_SSE_STREAMS + 1,024 open files in each
# of the two processes: raises the soft limit to that (past the hard limit
# only as root) and warns when it cannot. Warns on stderr when not every
# stream got every event, and (sse_fanout) when the api's threads waited
# for a CPU during a fan-out for over a tenth of the time they ran. Knobs:
# BENCH_SSE_STREAMS, FARM_LOG_LEVEL (the api's, warn), FARM_BIN_DIR.
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
    local tmp=$FARM_TEST_TMPDIR n=${BENCH_SSE_STREAMS:-15000} api_port tok out groups files
    bench_clear_test_env
    files=$((n + 1024))
    ulimit -n "$files" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    (($(ulimit -n) >= files)) ||
        gf_warn "open files limited to $(ulimit -n) (want $files): streams past it fail"
    if ((n > 11000)); then
        groups=1000,10000,$((n - 11000))
    else
        groups=$n
    fi
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
    gf_info "sse: $n streams (groups $groups)"
    out=$("$bin/sse_fanout" "http://127.0.0.1:$api_port" "$tok" "$n" "$api_pid" "$groups") ||
        gf_warn "not every stream got every event: $out"
    # The fan-outs reported: every group but the idle rest (the one group when alone).
    awk -v show="${groups%,*}" '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1)
           line = sprintf("sse: %d streams, %d bytes/stream, fan-out", v["connected"], v["rss_per_stream"])
           k = split(show, g, ",")
           for (j = 1; j <= k; j++)
               line = line sprintf("%sto %s: p50 %.1f ms p99 %.1f ms", j > 1 ? ", " : " ", g[j],
                                   v["group" g[j] "_p50_ms"], v["group" g[j] "_p99_ms"])
           print line }' <<<"$out"
}
