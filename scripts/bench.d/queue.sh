# shellcheck shell=bash
#
# scripts/bench.d/queue.sh: `scripts/bench queue`, BENCH_QUEUE_JOBS (20,000)
# jobs through enqueue -> claim -> complete by 2 claimer processes (64 in
# flight each; queue_bench) against a fresh redis-server with Redis's
# defaults, then redis-benchmark XADD on the same server; then the same
# again on a fresh redis-server configured as the farm runs its own (AOF
# on, fsync every second). Prints two lines:
#
#   queue: <N> jobs/s, <R> redis commands/job, <U> redis usec/job | redis-benchmark XADD <M> ops/s
#   queue (AOF everysec, as the farm runs Redis): <N> jobs/s, … | redis-benchmark XADD <M> ops/s
#
# Each line is the mean of BENCH_QUEUE_ROUNDS (3) rounds, each on a new
# server, after one warm-up round that is not counted (N, M integers; R with
# 2 decimals, U with 1). Commands and usec per job come from INFO
# commandstats: the commands clients sent - FCALL, FUNCTION (and EVALSHA,
# EVAL, SCRIPT) - not the calls functions make; those are printed on stderr.
# Knobs: BENCH_QUEUE_JOBS, BENCH_QUEUE_ROUNDS (1-99),
# BENCH_QUEUE_PAYLOAD_BYTES (pads each job's payload to about that size),
# BENCH_QUEUE_STATS (non-empty: each round's INFO commandstats on stderr),
# FARM_LOG_LEVEL (queue_bench's, warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_queue; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_queue() {
    bench_prepare redis-server redis-cli redis-benchmark
    [[ -x $bin/queue_bench ]] || gf_die "$bin/queue_bench is missing"
    # Globals: the EXIT trap runs after this function's locals are gone.
    queue_tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-queue.XXXXXX")
    queue_pidfile='' queue_port=''
    trap 'queue_redis_down; rm -rf "$queue_tmp"; true' EXIT
    # A round that is not counted: this machine's first seconds of load run
    # slower (the first round came out 10-20 % below the next ones, in
    # either configuration), which is the machine waking up, not the queue.
    queue_round default
    gf_info "warm-up round (not counted): $queue_line"
    # The issue's figure: a fresh redis-server with Redis's own defaults.
    queue_run default "queue"
    # The same on a redis-server configured as the farm runs its own
    # (scripts/lib.sh: AOF on, fsync every second), which a restart of Redis
    # needs to lose no accepted job.
    queue_run farm "queue (AOF everysec, as the farm runs Redis)"
    rm -rf "$queue_tmp"
}

# queue_redis_down : stop the redis-server of the round under way, if any
# (SHUTDOWN NOSAVE: a default-configured one would otherwise save first).
queue_redis_down() {
    [[ -n $queue_pidfile ]] || return 0
    [[ -n $queue_port ]] && redis-cli -p "$queue_port" shutdown nosave >/dev/null 2>&1
    gf_redis_stop "$queue_pidfile" || true
    queue_pidfile='' queue_port=''
}

# cmdstat PORT NAME FIELD : one field (calls, usec) of INFO commandstats, 0 when absent.
cmdstat() {
    redis-cli -p "$1" info commandstats |
        tr -d '\r' | awk -F'[:,=]' -v c="cmdstat_$2" -v f="$3" '
            $1 == c { for (i = 2; i < NF; i += 2) if ($i == f) v = $(i + 1) }
            END { print v + 0 }'
}

# queue_run KIND LABEL : BENCH_QUEUE_ROUNDS (3) rounds of queue_round KIND,
# then the result line under LABEL: the means of the rounds' figures (each
# round's go to stderr). The machine's noise moves one run by up to 10 %.
queue_run() {
    local kind=$1 label=$2 rounds=${BENCH_QUEUE_ROUNDS:-3} i all=
    [[ $rounds =~ ^[1-9][0-9]?$ ]] || gf_die "BENCH_QUEUE_ROUNDS: a number of rounds, 1-99"
    for ((i = 1; i <= rounds; i++)); do
        queue_round "$kind" # in this shell: its gf_die ends the script, and the trap sees its server
        gf_info "round $i: $queue_line"
        all+="$queue_line"$'\n'
    done
    printf '%s' "$all" | awk -v l="$label" '
        { rate += $1; calls += $2; usec += $3; xadd += $4; k++ }
        END {
            printf "%s: %d jobs/s, %.2f redis commands/job, %.1f redis usec/job | redis-benchmark XADD %d ops/s\n",
                l, rate / k + 0.5, calls / k, usec / k, xadd / k + 0.5
        }'
}

# queue_round KIND : start a fresh redis-server of KIND's configuration
# (default: nothing but where it listens and keeps its files; farm: the
# farm's, scripts/lib.sh), run queue_bench and then redis-benchmark XADD
# against it, stop it, and set queue_line to "<jobs/s> <commands/job>
# <usec/job> <XADD/s>".
queue_round() {
    local kind=$1 dir conf port='' attempt
    local jobs=${BENCH_QUEUE_JOBS:-20000} out n secs calls=0 usec=0 c inner xadd
    dir=$(mktemp -d "$queue_tmp/$kind.XXXXXX")
    conf=$dir/redis.conf
    queue_pidfile=$dir/redis.pid
    for attempt in 1 2 3 4 5; do
        port=$(gf_port_pick)
        if [[ $kind == farm ]]; then
            gf_redis_write_conf "$conf" "$port" "$dir" "$queue_pidfile" "$dir/redis.log"
        else
            printf 'bind 127.0.0.1\nport %s\ndaemonize yes\npidfile %s\nlogfile %s\ndir %s\n' \
                "$port" "$queue_pidfile" "$dir/redis.log" "$dir" >"$conf"
        fi
        queue_port=$port
        gf_redis_start "$conf" "$port" "$queue_pidfile" 10 && break
        gf_redis_stop "$queue_pidfile" || true
        gf_warn "redis did not start on port $port (attempt $attempt)"
        port=''
    done
    [[ -n $port ]] || gf_die "could not start redis-server (log: $(tail -n 3 "$dir/redis.log" 2>/dev/null))"
    gf_info "queue_bench $jobs jobs, redis-server with the $kind configuration"
    out=$(env -i PATH="$PATH" FARM_LOG_LEVEL="${FARM_LOG_LEVEL:-warn}" \
        FARM_REDIS_URL="redis://127.0.0.1:$port/0" \
        FARM_QUEUE_TIERS=pro:4:1000000,free:1:1000000 \
        BENCH_QUEUE_PAYLOAD_BYTES="${BENCH_QUEUE_PAYLOAD_BYTES:-}" \
        "$bin/queue_bench" "$jobs" "$dir") || gf_die "queue_bench failed: $out"
    read -r n secs <<<"$out"
    [[ $n =~ ^[0-9]+$ && $secs =~ ^[0-9]+(\.[0-9]+)?$ && $n -gt 0 ]] ||
        gf_die "queue_bench printed '$out', not '<jobs> <seconds>'"
    for c in evalsha eval script fcall function; do
        calls=$((calls + $(cmdstat "$port" "$c" calls)))
        usec=$((usec + $(cmdstat "$port" "$c" usec)))
    done
    inner=$(redis-cli -p "$port" info commandstats |
        sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\).*/\1 \2/p' |
        awk '$1 !~ /^(evalsha|eval|script|fcall|function|info|config|hello|ping)$/ { s += $2 } END { print s + 0 }')
    gf_info "calls made inside functions: $(awk -v i="$inner" -v n="$n" 'BEGIN { printf "%.1f", i / n }')/job"
    if [[ -n ${BENCH_QUEUE_STATS:-} ]]; then
        redis-cli -p "$port" info commandstats >&2
    fi
    xadd=$(redis-benchmark -p "$port" -n 200000 -c 50 -q \
        XADD bench:stream MAXLEN '~' 100000 '*' f v 2>/dev/null | tr '\r' '\n' |
        sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n1)
    [[ -n $xadd ]] || gf_die "could not parse redis-benchmark output"
    queue_redis_down
    rm -rf "$dir"
    queue_line=$(awk -v n="$n" -v s="$secs" -v c="$calls" -v u="$usec" -v m="$xadd" \
        'BEGIN { printf "%d %.2f %.1f %d\n", n / s + 0.5, c / n, u / n, m + 0.5 }')
}
