# shellcheck shell=bash
#
# scripts/bench.d/api.sh: `scripts/bench api`, POST /v1/generations through
# wrk (-t2 -c64 -d10s; a Lua script rotates 100 pre-funded users' tokens; no
# workers run, so every request is a full accept: rate limit, hold,
# enqueue) against BENCH_API_PROCESSES (2) farm-api processes on one port,
# twice in the same invocation: first the baseline, each accept its own
# statement (FARM_API_ACCEPT_BATCH_MAX=1), then group-committed (the default
# FARM_API_ACCEPT_BATCH_MAX), each against a fresh api on the same
# database; then the second api's /healthz. Prints four lines:
#
#   api_enqueue: <N> req/s p50 <a> ms p99 <b> ms, non-2xx <k> | healthz <M> req/s
#   api_enqueue_baseline: <N> req/s p50 <a> ms p99 <b> ms, non-2xx <k> (FARM_API_ACCEPT_BATCH_MAX=1) | batched/baseline <r>x
#   api_enqueue cpu: <t> us/request: farm-api <a>, postgres <p>, redis <r> | wrk <w>
#   api_accept_batch: <m> accepts per statement (mean, one api process)
#
# (N, k, M integers; a, b with 2 decimals; r, m with 2.) The baseline runs
# first, so the batched run meets the larger tables. The cpu line: user +
# system CPU time of each process (/proc/PID/stat, its threads and live
# children: both api processes, every Postgres backend) over the batched
# run, per request answered; <t> sums the farm's three, wrk (the load
# generator, on the same cores) is apart. It carries over between runs on
# a shared machine better than the rates do: N req/s on 2 cores needs
# <t> + <w> <= 2,000,000 / N microseconds. Knobs: BENCH_DURATION (wrk's
# -d, 10s), BENCH_API_PROCESSES (2), BENCH_API_ACCOUNTS (100,000 other
# users with an account in the database besides the 100), FARM_LOG_LEVEL
# (the api's, warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_api; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_api() {
    bench_prepare wrk curl
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_api_in_fixture
}

# Runs inside tests/fixture/with-servers (bench_with_servers).
bench_api_in_fixture() {
    local tmp=$FARM_TEST_TMPDIR i user tok pg_pid redis_pid
    pg_pid=$(gf_read_pidfile "$FARM_TEST_PG_DATA/postmaster.pid")
    redis_pid=$(gf_read_pidfile "$tmp/redis.pid")
    bench_clear_test_env
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 FARM_RATE_LIMIT_BURST=1000000 \
        FARM_RATE_LIMIT_PER_MIN=1000000 FARM_RATE_LIMITS=reads=1000000/1000000 FARM_QUEUE_TIERS=pro:4:1000000,free:1:3 \
        FARM_API_PROCESSES=${BENCH_API_PROCESSES:-2} FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn}
    api_pid=''
    trap '[[ -n $api_pid ]] && gf_stop_pid "$api_pid" TERM 10; true' EXIT
    # The farm's users beyond the benchmark's own: a product with a
    # hundred thousand users has that many accounts, and a statement that
    # scans them shows here (accounts of 0 credits: no ledger entry owed).
    local others=${BENCH_API_ACCOUNTS:-100000}
    gf_info "adding $others other users"
    psql "$FARM_DATABASE_URL" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO users (id) SELECT gen_random_uuid() FROM generate_series(1, $others);
INSERT INTO credit_accounts (user_id) SELECT id FROM users ON CONFLICT DO NOTHING;
ANALYZE users;
ANALYZE credit_accounts;
SQL
    gf_info "making 100 funded users"
    {
        echo 'tokens = {'
        for ((i = 0; i < 100; i++)); do
            user=$(printf '00000000-0000-4000-8000-%012d' "$i")
            "$bin/farm" grant --user "$user" --amount 100000000 --reason bench >/dev/null
            tok=$("$bin/farm" token --sub "$user" --plan pro --ttl 3600)
            echo "  \"$tok\","
        done
        echo '}'
        cat <<'LUA'
local n = 0
local body = '{"kind":"avatar","prompt":"a watercolor portrait of a red-haired astronaut"}'
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/generations", {
    ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1],
    ["Content-Type"] = "application/json"}, body)
end
LUA
    } >"$tmp/post.lua"
    local base batched health metrics rps p50 p99 bad brps bp50 bp99 bbad hrps
    bench_api_start "$tmp/api-baseline.log" 1
    base=$(wrk_full api "http://127.0.0.1:$api_port/v1/generations" "$tmp/post.lua")
    gf_stop_pid "$api_pid" TERM 10
    api_pid=''
    bench_api_start "$tmp/api.log" ''
    local cpu0 cpu1 wrk0 wrk1
    cpu0=$(bench_cpu_ticks "$api_pid") cpu0+=" $(bench_cpu_ticks "$pg_pid") $(bench_cpu_ticks "$redis_pid")"
    wrk0=$(bench_reaped_ticks)
    batched=$(wrk_full api "http://127.0.0.1:$api_port/v1/generations" "$tmp/post.lua")
    wrk1=$(bench_reaped_ticks)
    cpu1=$(bench_cpu_ticks "$api_pid") cpu1+=" $(bench_cpu_ticks "$pg_pid") $(bench_cpu_ticks "$redis_pid")"
    metrics=$(curl -fsS "http://127.0.0.1:$api_port/metrics") || gf_die "no /metrics from farm-api"
    health=$(wrk_full healthz "http://127.0.0.1:$api_port/healthz")
    read -r rps p50 p99 bad <<<"$batched"
    read -r brps bp50 bp99 bbad <<<"$base"
    read -r hrps _ <<<"$health"
    printf 'api_enqueue: %d req/s p50 %.2f ms p99 %.2f ms, non-2xx %d | healthz %d req/s\n' \
        "$rps" "$p50" "$p99" "$bad" "$hrps"
    printf 'api_enqueue_baseline: %d req/s p50 %.2f ms p99 %.2f ms, non-2xx %d (FARM_API_ACCEPT_BATCH_MAX=1) | batched/baseline %.2fx\n' \
        "$brps" "$bp50" "$bp99" "$bbad" "$(awk -v a="$rps" -v b="$brps" 'BEGIN { print (b > 0 ? a / b : 0) }')"
    local a0 p0 r0 a1 p1 r1
    read -r a0 p0 r0 <<<"$cpu0"
    read -r a1 p1 r1 <<<"$cpu1"
    awk -v hz="$(getconf CLK_TCK)" -v a="$((a1 - a0))" -v p="$((p1 - p0))" \
        -v r="$((r1 - r0))" -v w="$((wrk1 - wrk0))" -v rps="$rps" -v d="${BENCH_DURATION:-10s}" 'BEGIN {
        sub(/s$/, "", d); m = rps * d; f = 1e6 / hz / (m > 0 ? m : 1)
        printf "api_enqueue cpu: %.0f us/request: farm-api %.0f, postgres %.0f, redis %.0f | wrk %.0f\n",
            (a + p + r) * f, a * f, p * f, r * f, w * f }'
    awk '/^farm_api_accept_batch_size_sum / { s = $2 } /^farm_api_accept_batch_size_count / { c = $2 }
        END { printf "api_accept_batch: %.2f accepts per statement (mean, one api process)\n", (c > 0 ? s / c : 0) }' <<<"$metrics"
}

# bench_api_start LOG BATCH_MAX : starts farm-api (BATCH_MAX '' for the default) on a new
# port, sets api_pid and api_port, and waits until it is ready.
bench_api_start() {
    local log=$1 batch=$2
    api_port=$(gf_port_pick)
    if [[ -n $batch ]]; then
        FARM_API_ACCEPT_BATCH_MAX=$batch FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$log" 2>&1 &
    else
        FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$log" 2>&1 &
    fi
    api_pid=$!
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api_pid" ||
        gf_die "farm-api did not become ready: $(tail -n 20 "$log")"
}
