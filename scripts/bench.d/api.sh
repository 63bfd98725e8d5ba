# shellcheck shell=bash
#
# scripts/bench.d/api.sh: `scripts/bench api`, POST /v1/generations through
# wrk (-t2 -c64 -d10s; a Lua script rotates 100 pre-funded users' tokens; no
# workers run, so every request is a full accept: rate limit, hold,
# enqueue), then the same api's /healthz. Prints one line:
#
#   api_enqueue: <N> req/s p50 <a> ms p99 <b> ms, non-2xx <k> | healthz <M> req/s
#
# (N, k, M integers; a, b with 2 decimals.) Knobs: BENCH_DURATION (wrk's -d,
# 10s), FARM_LOG_LEVEL (the api's, warn), FARM_BIN_DIR.
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
    local tmp=$FARM_TEST_TMPDIR api_port i user tok
    bench_clear_test_env
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 FARM_RATE_LIMIT_BURST=1000000 \
        FARM_RATE_LIMIT_PER_MIN=1000000 FARM_RATE_LIMITS=reads=1000000/1000000 FARM_QUEUE_TIERS=pro:4:1000000,free:1:3 \
        FARM_API_PROCESSES=1 FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn}
    api_pid=''
    trap '[[ -n $api_pid ]] && gf_stop_pid "$api_pid" TERM 10; true' EXIT
    api_port=$(gf_port_pick)
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    api_pid=$!
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api_pid" ||
        gf_die "farm-api did not become ready: $(tail -n 20 "$tmp/api.log")"
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
    local post health rps p50 p99 bad hrps
    post=$(wrk_full api "http://127.0.0.1:$api_port/v1/generations" "$tmp/post.lua")
    health=$(wrk_full healthz "http://127.0.0.1:$api_port/healthz")
    read -r rps p50 p99 bad <<<"$post"
    read -r hrps _ <<<"$health"
    printf 'api_enqueue: %d req/s p50 %.2f ms p99 %.2f ms, non-2xx %d | healthz %d req/s\n' \
        "$rps" "$p50" "$p99" "$bad" "$hrps"
}
