# shellcheck shell=bash
#
# scripts/bench.d/providers.sh: `scripts/bench providers`,
# BENCH_PROVIDER_CALLS (6,000) calls through the hf adapter (one curl multi
# handle on one loop; bench_providers) against farm-fake-provider
# answering after 2 s, BENCH_PROVIDER_INFLIGHT (2,000) in flight. Prints
# one line:
#
#   providers: <F> in flight, <N> calls/s, added latency p50 <a> ms p99 <b> ms, rss <R> MiB
#
# (added = a call's total time minus the fake's 2 s; rss = bench_providers'
# peak; N an integer, a, b and R with 1 decimal.) Knobs:
# BENCH_PROVIDER_CALLS, BENCH_PROVIDER_INFLIGHT, FARM_BIN_DIR, and
# BENCH_PROVIDER_TRACE=PATH (bench_providers writes each call's index, start
# and added latency there, to see which calls are slow). Goal (issue #22):
# 2,000 in flight with p99 <= 100 ms and rss <= 200 MiB.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_providers; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_providers() {
    bench_prepare
    [[ -x $bin/bench_providers && -x $bin/farm-fake-provider ]] ||
        gf_die "$bin/bench_providers or farm-fake-provider is missing"
    local out calls=${BENCH_PROVIDER_CALLS:-6000} inflight=${BENCH_PROVIDER_INFLIGHT:-2000} delay=2000
    # Globals: the EXIT trap runs after this function's locals are gone.
    prov_tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-providers.XXXXXX")
    fake_pid=''
    trap '[[ -n $fake_pid ]] && gf_stop_pid "$fake_pid" TERM 5; rm -rf "$prov_tmp"; true' EXIT
    "$bin/farm-fake-provider" --latency-ms "$delay" --port-file "$prov_tmp/port" \
        >/dev/null 2>"$prov_tmp/fake.log" &
    fake_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $prov_tmp/port ]] && break
        sleep 0.1
    done
    [[ -s $prov_tmp/port ]] || gf_die "farm-fake-provider did not start: $(tail -n 5 "$prov_tmp/fake.log")"
    gf_info "bench_providers: $calls calls, $inflight in flight, fake latency ${delay} ms"
    out=$("$bin/bench_providers" "http://127.0.0.1:$(cat "$prov_tmp/port")" "$calls" "$inflight" "$delay") ||
        gf_die "bench_providers failed: $out"
    # The fifth field, the failed calls, is not part of the line.
    local rate p50 p99 rss
    read -r rate p50 p99 rss _ <<<"$out"
    printf 'providers: %s in flight, %s calls/s, added latency p50 %s ms p99 %s ms, rss %s MiB\n' \
        "$inflight" "$rate" "$p50" "$p99" "$rss"
}
