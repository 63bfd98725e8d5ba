# shellcheck shell=bash
#
# scripts/bench.d/webhooks.sh: `scripts/bench webhooks`, webhook delivery
# through the whole farm: farm-api, 2 farm-workers, the fake provider at
# BENCH_WEBHOOKS_LATENCY_MS (20) per image, and the test receiver
# (tests/webhooks/receiver.js, which verifies every signature; the tests'
# tampered-body check is off: WH_TAMPER_CHECK=0) on loopback
# (FARM_WEBHOOK_ALLOW_PRIVATE=1). BENCH_WEBHOOKS_JOBS (2,000) 256x256 avatar
# generations with a webhook_url are POSTed as fast as the api accepts them,
# then every webhook is waited for (up to 600 s). Prints two lines:
#
#   webhooks: <g> generations/s, <d> deliveries/s, lag p50 <a> ms p99 <b> ms, <n> delivered, <x> distinct ids received
#   webhooks cpu: <t> ms/generation: farm-api <a>, farm-workers <w>, postgres <p>, redis <r> | test servers: fake provider <f>, receiver <v>
#
# (generations/s over first accept .. last finish; deliveries/s over first
# terminal status .. last delivery; lag = the delivery's delivered_at minus
# the terminal status's commit (webhook_deliveries.created_at), both from
# Postgres.) Goal (issue #15): p99 lag <= 250 ms at >= 100 generations/s.
# The cpu line: user + system CPU time (/proc/PID/stat, a process's
# threads and its live children included: every Postgres backend) from the
# first POST to the last delivery, per generation accepted; <t> sums the
# farm's four, the test servers' cost is apart. It carries over between
# runs on a shared machine better than the rates do. On 2 cores, 100
# generations/s needs <t> plus the test servers' at most 20 ms.
# Knobs: BENCH_WEBHOOKS_JOBS, BENCH_WEBHOOKS_LATENCY_MS, FARM_LOG_LEVEL
# (warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_webhooks; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_webhooks() {
    bench_prepare curl psql node
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_webhooks_in_fixture
}

# webhooks_cpu_each GROUP... : one line per GROUP (a word list of PIDs):
# bench_cpu_ticks of its PIDs.
webhooks_cpu_each() {
    local g
    for g in "$@"; do
        # shellcheck disable=SC2086  # a group is split into its PIDs
        bench_cpu_ticks $g
    done
}

# webhooks_stop_all : stop every process in webhooks_pids, by PID.
webhooks_stop_all() {
    local pid
    for pid in "${webhooks_pids[@]}"; do gf_stop_pid "$pid" TERM 30; done
}

# bench_webhooks_in_fixture : the run. Inside tests/fixture/with-servers.
bench_webhooks_in_fixture() {
    local tmp=$FARM_TEST_TMPDIR n=${BENCH_WEBHOOKS_JOBS:-2000} i
    local secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    local pg_pid redis_pid
    pg_pid=$(gf_read_pidfile "$FARM_TEST_PG_DATA/postmaster.pid")
    redis_pid=$(gf_read_pidfile "$tmp/redis.pid")
    bench_clear_test_env
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 \
        FARM_RATE_LIMIT_BURST=1000000 FARM_RATE_LIMIT_PER_MIN=1000000 \
        FARM_QUEUE_TIERS=pro:4:1000000,free:1:3 FARM_API_PROCESSES=1 \
        FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn} FARM_PROVIDER=fake FARM_WORKER_CONCURRENCY=256 \
        FARM_STORAGE_DIR=$tmp/storage FARM_PRESETS_DIR=$root/imaging/presets \
        FARM_WORKER_METRICS_PORT=0 FARM_WEBHOOK_SECRET=$secret FARM_WEBHOOK_ALLOW_PRIVATE=1 \
        FARM_WEBHOOK_PER_HOST=64 FARM_WEBHOOK_CONCURRENCY=256
    webhooks_pids=()
    trap 'webhooks_stop_all; true' EXIT
    "$bin/farm-fake-provider" --port-file "$tmp/fake.port" \
        --latency-ms "${BENCH_WEBHOOKS_LATENCY_MS:-20}" >"$tmp/fake.out" 2>"$tmp/fake.log" &
    webhooks_pids+=($!)
    local fake=$!
    WH_SECRET=$secret WH_TAMPER_CHECK=0 node "$root/tests/webhooks/receiver.js" "$tmp/receiver.port" \
        >"$tmp/receiver.log" 2>&1 &
    webhooks_pids+=($!)
    local receiver=$!
    for ((i = 0; i < 100; i++)); do [[ -s $tmp/fake.port && -s $tmp/receiver.port ]] && break; sleep 0.1; done
    local fake_port receiver_port hook api_port
    fake_port=$(cat "$tmp/fake.port")
    receiver_port=$(cat "$tmp/receiver.port")
    export FARM_FAKE_PROVIDER_URL=http://127.0.0.1:$fake_port
    hook=http://127.0.0.1:$receiver_port/hook/200
    api_port=$(gf_port_pick)
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    webhooks_pids+=($!)
    local api=$!
    local workers=()
    for i in 1 2; do
        "$bin/farm-worker" </dev/null >"$tmp/worker$i.log" 2>&1 &
        webhooks_pids+=($!)
        workers+=($!)
    done
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "$api" ||
        gf_die "farm-api did not become ready"
    local user=00000000-0000-4000-8000-0000000e2e15 tok
    "$bin/farm" grant --user "$user" --amount 100000000 --reason bench >/dev/null
    tok=$("$bin/farm" token --sub "$user" --plan pro --ttl 3600)
    {
        for ((i = 0; i < n; i++)); do
            printf 'url = "http://127.0.0.1:%s/v1/generations"\n' "$api_port"
            printf 'header = "Authorization: Bearer %s"\n' "$tok"
            printf 'header = "Content-Type: application/json"\n'
            printf 'data = "{\\"kind\\":\\"avatar\\",\\"prompt\\":\\"fox %d\\",\\"width\\":256,\\"height\\":256,\\"webhook_url\\":\\"%s?t=%d\\"}"\n' "$i" "$hook" "$i"
            printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
            ((i + 1 < n)) && printf 'next\n'
        done
    } >"$tmp/posts.cfg"
    gf_info "webhooks: POSTing $n generations"
    # The CPU ticks of api, workers, postgres, redis, fake provider, receiver.
    local -a cpu0 cpu1 cpu_of=("$api" "${workers[*]}" "$pg_pid" "$redis_pid" "$fake" "$receiver")
    mapfile -t cpu0 < <(webhooks_cpu_each "${cpu_of[@]}")
    curl -s --no-progress-meter --parallel --parallel-max 32 -K "$tmp/posts.cfg" >"$tmp/codes.txt"
    local accepted left=1 got t0=$SECONDS psql_bin
    accepted=$(grep -c '^202$' "$tmp/codes.txt" || true)
    ((accepted == n)) || gf_warn "only $accepted of $n POSTs answered 202"
    gf_info "webhooks: waiting for $accepted webhooks"
    # The wait takes no CPU from the farm: the receiver answers /wait once
    # it has had every webhook (or after 5 s), and only then is Postgres
    # asked whether anything is still open, by psql itself (Debian's psql
    # is a Perl wrapper, about 60 ms of CPU a call).
    psql_bin=$(gf_pg_bindir)/psql
    while ((left > 0 && SECONDS - t0 < 600)); do
        got=$(curl -s --max-time 10 "http://127.0.0.1:$receiver_port/wait?n=$accepted&ms=5000") || got=0
        left=$("$psql_bin" -At "$FARM_DATABASE_URL" -c "SELECT (SELECT count(*) FROM generations WHERE status IN ('queued','running')) + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')")
        ((left > 0 && got >= accepted)) && sleep 0.2
    done
    ((left == 0)) || gf_warn "$left generations or webhooks still open after $((SECONDS - t0))s"
    mapfile -t cpu1 < <(webhooks_cpu_each "${cpu_of[@]}")
    local distinct
    distinct=$(curl -s "http://127.0.0.1:$receiver_port/received" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
            if (r.some(x=>!x.verified)) console.error("webhooks: a signature did not verify");
            console.log(new Set(r.map(x=>x.id)).size)})')
    psql -At -F ' ' "$FARM_DATABASE_URL" -c "
        WITH d AS (SELECT created_at, delivered_at,
                          extract(epoch FROM (delivered_at - created_at)) * 1000 AS ms
                   FROM webhook_deliveries WHERE status = 'delivered'),
             g AS (SELECT created_at, finished_at FROM generations WHERE status = 'succeeded')
        SELECT (SELECT count(*) / greatest(extract(epoch FROM (max(finished_at) - min(created_at))), 0.001) FROM g),
               count(*) / greatest(extract(epoch FROM (max(delivered_at) - min(created_at))), 0.001),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), count(*)
        FROM d" >"$tmp/stats.txt"
    local gps dps p50 p99 delivered
    read -r gps dps p50 p99 delivered <"$tmp/stats.txt"
    awk -v g="$gps" -v d="$dps" -v a="$p50" -v b="$p99" -v n="$delivered" -v x="$distinct" 'BEGIN {
        printf "webhooks: %.0f generations/s, %.0f deliveries/s, lag p50 %.0f ms p99 %.0f ms, %d delivered, %d distinct ids received\n",
            g, d, a, b, n, x }'
    awk -v n="$accepted" -v hz="$(getconf CLK_TCK)" -v a="$((cpu1[0] - cpu0[0]))" \
        -v w="$((cpu1[1] - cpu0[1]))" -v p="$((cpu1[2] - cpu0[2]))" -v r="$((cpu1[3] - cpu0[3]))" \
        -v f="$((cpu1[4] - cpu0[4]))" -v v="$((cpu1[5] - cpu0[5]))" 'BEGIN {
        if (n < 1) n = 1
        k = 1000 / hz / n
        printf "webhooks cpu: %.1f ms/generation: farm-api %.1f, farm-workers %.1f, postgres %.1f, redis %.1f | test servers: fake provider %.1f, receiver %.1f\n",
            (a + w + p + r) * k, a * k, w * k, p * k, r * k, f * k, v * k }'
}
