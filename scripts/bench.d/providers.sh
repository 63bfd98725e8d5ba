# shellcheck shell=bash
#
# scripts/bench.d/providers.sh: `scripts/bench providers`,
# BENCH_PROVIDER_CALLS (6,000) calls through the hf adapter (one curl multi
# handle on one loop; bench_providers) against farm-fake-provider
# answering after 2 s, BENCH_PROVIDER_INFLIGHT (2,000) in flight, over each
# protocol of BENCH_PROVIDER_HTTP (default "h2 h1"), a fresh fake each:
#
#   h2: https to the fake's TLS port (h2 by ALPN, FARM_PROVIDER_HTTP2=auto,
#       the fake's certificate as FARM_PROVIDER_CA_FILE): the path the farm
#       takes to the real providers, all https. (h2c with prior knowledge
#       is not measured: Debian 12's libcurl 7.88 fails it on every reused
#       connection, and the farm refuses it there; docs/providers.md.)
#   h1: plain http, HTTP/1.1 (FARM_PROVIDER_HTTP2=off): the figure before
#       HTTP/2, for comparison.
#
# Two lines per protocol:
#
#   providers: <F> in flight, <N> calls/s, added latency p50 <a> ms p99 <b> ms, rss <R> MiB (<proto>; ...)
#   providers_later: <F> in flight, calls <F+1>-<C> (after the first <F>), added latency p50 <a> ms p99 <b> ms (<proto>)
#
# (added = a call's total time minus the fake's 2 s; rss = bench_providers'
# peak; N an integer, a, b and R with 1 decimal.) The first line is the
# goal's measure, over every call: its p99 is the first <F> calls, started
# at once in a process that has no connection and no memory yet. The second
# line is the same run's calls after those (each started when an earlier call
# ended, <F> still in flight), what a worker that has ramped up sees; it is
# printed only when CALLS > INFLIGHT. The parenthesis says the
# protocol, the CPU per call of bench_providers and of the fake (user +
# system over the run, divided by the calls) and, over h2, the connections
# the fake accepted. Knobs: BENCH_PROVIDER_CALLS, BENCH_PROVIDER_INFLIGHT,
# BENCH_PROVIDER_HTTP, FARM_BIN_DIR, and BENCH_PROVIDER_TRACE=PATH
# (bench_providers writes each call's index, start and added latency there,
# the protocol's name appended to PATH). Goal (issue #22): 2,000 in flight
# with p99 <= 100 ms and rss <= 200 MiB.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_providers; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

# providers_run PROTO CALLS INFLIGHT DELAY : one fake, one bench_providers run, one line.
providers_run() {
    local proto=$1 calls=$2 inflight=$3 delay=$4 out i url
    rm -f "$prov_tmp/port" "$prov_tmp/tls_port" "$prov_tmp/cert.pem"
    "$bin/farm-fake-provider" --latency-ms "$delay" --port-file "$prov_tmp/port" \
        --tls-port-file "$prov_tmp/tls_port" --tls-cert "$prov_tmp/cert.pem" \
        >/dev/null 2>"$prov_tmp/fake.log" &
    fake_pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s $prov_tmp/port && -s $prov_tmp/tls_port ]] && break
        sleep 0.1
    done
    [[ -s $prov_tmp/port && -s $prov_tmp/tls_port ]] ||
        gf_die "farm-fake-provider did not start: $(tail -n 5 "$prov_tmp/fake.log")"
    local port tls_port
    port=$(cat "$prov_tmp/port")
    tls_port=$(cat "$prov_tmp/tls_port")
    local -a env=(FARM_PROVIDER_HTTP2=off)
    url="http://127.0.0.1:$port"
    if [[ $proto == h2 ]]; then
        env=(FARM_PROVIDER_HTTP2=auto "FARM_PROVIDER_CA_FILE=$prov_tmp/cert.pem")
        url="https://127.0.0.1:$tls_port"
    fi
    local -a trace=()
    [[ -n ${BENCH_PROVIDER_TRACE:-} ]] && trace=("BENCH_PROVIDER_TRACE=$BENCH_PROVIDER_TRACE.$proto")
    gf_info "bench_providers ($proto): $calls calls, $inflight in flight, fake latency ${delay} ms"
    local fake_t0 fake_t1
    fake_t0=$(bench_cpu_ticks "$fake_pid")
    out=$(env "${env[@]}" "${trace[@]}" "$bin/bench_providers" "$url" "$calls" "$inflight" "$delay") ||
        gf_die "bench_providers ($proto) failed: $out"
    fake_t1=$(bench_cpu_ticks "$fake_pid")
    local conns=''
    if [[ $proto == h2 ]]; then
        conns=$(curl -fsS "http://127.0.0.1:$port/__fake/log" | jq -r '.h2.connections') ||
            gf_die "the fake's log did not answer"
        conns="; $conns connections for $calls calls"
    fi
    gf_stop_pid "$fake_pid" TERM 5
    fake_pid=''
    # The fifth field, the failed calls, is not part of the line (bench_providers fails on any).
    local rate p50 p99 rss cpu_ms hz fake_us later50 later99
    read -r rate p50 p99 rss _ cpu_ms later50 later99 <<<"$out"
    hz=$(getconf CLK_TCK)
    fake_us=$(((fake_t1 - fake_t0) * 1000000 / hz / calls))
    local what="HTTP/1.1 over http"
    [[ $proto == h2 ]] && what="h2 over https (ALPN)"
    printf 'providers: %s in flight, %s calls/s, added latency p50 %s ms p99 %s ms, rss %s MiB (%s; cpu per call: bench %s us, fake %s us%s)\n' \
        "$inflight" "$rate" "$p50" "$p99" "$rss" "$what" "$((${cpu_ms%.*} * 1000 / calls))" "$fake_us" "$conns"
    ((calls > inflight)) &&
        printf 'providers_later: %s in flight, calls %s-%s (after the first %s), added latency p50 %s ms p99 %s ms (%s)\n' \
            "$inflight" "$((inflight + 1))" "$calls" "$inflight" "$later50" "$later99" "$what"
    return 0
}

bench_providers() {
    bench_prepare curl jq
    [[ -x $bin/bench_providers && -x $bin/farm-fake-provider ]] ||
        gf_die "$bin/bench_providers or farm-fake-provider is missing"
    local calls=${BENCH_PROVIDER_CALLS:-6000} inflight=${BENCH_PROVIDER_INFLIGHT:-2000} delay=2000
    # Globals: the EXIT trap runs after this function's locals are gone.
    prov_tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-providers.XXXXXX")
    fake_pid=''
    trap '[[ -n $fake_pid ]] && gf_stop_pid "$fake_pid" TERM 5; rm -rf "$prov_tmp"; true' EXIT
    local proto
    for proto in ${BENCH_PROVIDER_HTTP:-h2 h1}; do
        case $proto in
        h1 | h2) providers_run "$proto" "$calls" "$inflight" "$delay" ;;
        *) gf_die "BENCH_PROVIDER_HTTP: h1 or h2, not '$proto'" ;;
        esac
    done
}
