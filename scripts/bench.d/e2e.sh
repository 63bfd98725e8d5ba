# shellcheck shell=bash
#
# scripts/bench.d/e2e.sh: `scripts/bench e2e`, the whole farm: farm-api,
# farm-workers, the fake provider at 2 s per image; BENCH_E2E_JOBS (1,000)
# avatar generations POSTed as fast as the api accepts them (curl
# --parallel), then waited for (up to 600 s). Runs twice, each on fresh
# servers: 2 workers with a ceiling of 64 generations each
# (FARM_WORKER_CONCURRENCY; they claim by measured capacity within it,
# docs/queue.md "Claiming by capacity"), then what one process holds: 1
# worker with a ceiling of 500. The burst is a free-tier user's; once half
# of it has finished, a pro user POSTs one generation of the same kind.
# Prints two lines:
#
#   e2e: <N> completions/min, overhead p50 <a> ms p99 <b> ms (total - provider time), worker RSS <r> MB, pro job queue wait <w> ms (done in <d> ms)
#   e2e_1x500: <N> completions/min, … (the same fields)
#
# (overhead per generation of the burst = finished_at - started_at - 2000 ms,
# where started_at is the claim; completions/min over the burst's first
# accept .. last finish; RSS the larger worker's peak as sampled once a
# second; the pro job's queue wait = its started_at - created_at, done its
# finished_at - created_at; all integers.) Knobs: BENCH_E2E_JOBS,
# FARM_LOG_LEVEL (the api's and workers', warn), FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_e2e; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_e2e() {
    bench_prepare curl psql
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_e2e_in_fixture 2 64 e2e
    # What one process holds: a single worker with 500 generations in flight.
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_e2e_in_fixture 1 500 e2e_1x500
}

# e2e_stop_all : stop every process in e2e_pids, by PID.
e2e_stop_all() {
    local pid
    for pid in "${e2e_pids[@]}"; do gf_stop_pid "$pid" TERM 30; done
}

# bench_e2e_in_fixture WORKERS CONCURRENCY LABEL : one run, its line under
# LABEL. Runs inside tests/fixture/with-servers (bench_with_servers).
bench_e2e_in_fixture() {
    local workers=$1 conc=$2 label=$3
    local tmp=$FARM_TEST_TMPDIR n=${BENCH_E2E_JOBS:-1000} i fake_port
    bench_clear_test_env
    export FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 FARM_RATE_LIMIT_BURST=1000000 \
        FARM_RATE_LIMIT_PER_MIN=1000000 FARM_RATE_LIMITS=reads=1000000/1000000 FARM_QUEUE_TIERS=pro:4:1000000,free:1:1000000 \
        FARM_API_PROCESSES=1 FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn} FARM_PROVIDER=fake \
        FARM_WORKER_CONCURRENCY=$conc FARM_STORAGE_DIR=$tmp/storage \
        FARM_PRESETS_DIR=$root/imaging/presets FARM_WORKER_METRICS_PORT=0
    # Global for the EXIT trap (locals are gone when it runs).
    e2e_pids=()
    trap 'e2e_stop_all; true' EXIT
    "$bin/farm-fake-provider" --port-file "$tmp/fake.port" --latency-ms 2000 \
        >"$tmp/fake.out" 2>"$tmp/fake.log" &
    e2e_pids+=($!)
    for ((i = 0; i < 100; i++)); do [[ -s $tmp/fake.port ]] && break; sleep 0.1; done
    fake_port=$(cat "$tmp/fake.port")
    export FARM_FAKE_PROVIDER_URL=http://127.0.0.1:$fake_port
    local api_port
    api_port=$(gf_port_pick)
    FARM_API_PORT=$api_port "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    e2e_pids+=($!)
    for ((i = 1; i <= workers; i++)); do
        "$bin/farm-worker" </dev/null >"$tmp/worker$i.log" 2>&1 &
        e2e_pids+=($!)
    done
    local w1=${e2e_pids[2]} w2=${e2e_pids[3]:-${e2e_pids[2]}}
    gf_wait_http "http://127.0.0.1:$api_port/readyz" 200 20 "${e2e_pids[1]}" ||
        gf_die "farm-api did not become ready"
    # The burst's user is on the free tier, so the pro job's tier means something.
    local user=00000000-0000-4000-8000-0000000e2e00 tok
    local pro_user=00000000-0000-4000-8000-0000000e2e01 pro_tok
    "$bin/farm" grant --user "$user" --amount 100000000 --reason bench >/dev/null
    "$bin/farm" grant --user "$pro_user" --amount 1000 --reason bench >/dev/null
    tok=$("$bin/farm" token --sub "$user" --plan free --ttl 3600)
    pro_tok=$("$bin/farm" token --sub "$pro_user" --plan pro --ttl 3600)
    {
        for ((i = 0; i < n; i++)); do
            printf 'url = "http://127.0.0.1:%s/v1/generations"\n' "$api_port"
            printf 'header = "Authorization: Bearer %s"\n' "$tok"
            printf 'header = "Content-Type: application/json"\n'
            printf 'data = "{\\"kind\\":\\"avatar\\",\\"prompt\\":\\"fox %d\\",\\"width\\":512,\\"height\\":512}"\n' "$i"
            printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
            # Options do not carry over to the next URL ("next"): each POST is whole.
            ((i + 1 < n)) && printf 'next\n'
        done
    } >"$tmp/posts.cfg"
    gf_info "e2e: POSTing $n generations"
    curl -s --no-progress-meter --parallel --parallel-max 32 -K "$tmp/posts.cfg" >"$tmp/codes.txt"
    local accepted
    accepted=$(grep -c '^202$' "$tmp/codes.txt" || true)
    ((accepted == n)) || gf_warn "only $accepted of $n POSTs answered 202"
    gf_info "e2e: waiting for $accepted generations to finish"
    local left=1 rss1 rss2 rss=0 t=0 pro_sent=0 pro_code psql_bin
    # psql itself, not Debian's Perl wrapper (about 60 ms of CPU a call,
    # taken from the farm once a second).
    psql_bin=$(gf_pg_bindir)/psql
    while ((left > 0 && t < 600)); do
        sleep 1
        t=$((t + 1))
        left=$("$psql_bin" -At "$FARM_DATABASE_URL" -c "SELECT count(*) FROM generations WHERE status IN ('queued','running')")
        # Midway through the burst (half of it finished), the pro user's one generation.
        if ((!pro_sent && left <= accepted / 2)); then
            pro_sent=1
            pro_code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
                -H "Authorization: Bearer $pro_tok" -H 'Content-Type: application/json' \
                -d '{"kind":"avatar","prompt":"a pro fox","width":512,"height":512}' \
                "http://127.0.0.1:$api_port/v1/generations")
            [[ $pro_code == 202 ]] || gf_warn "the pro job's POST answered $pro_code"
            left=1
        fi
        rss1=$(awk '/VmRSS/ {print $2}' /proc/"$w1"/status 2>/dev/null || echo 0)
        rss2=$(awk '/VmRSS/ {print $2}' /proc/"$w2"/status 2>/dev/null || echo 0)
        ((rss1 > rss)) && rss=$rss1
        ((rss2 > rss)) && rss=$rss2
    done
    ((left == 0)) || gf_warn "$left generations still open after ${t}s"
    psql -At -F ' ' "$FARM_DATABASE_URL" -c "
        WITH g AS (SELECT created_at, started_at, finished_at FROM generations
                   WHERE status = 'succeeded' AND user_id = '$user'),
             o AS (SELECT extract(epoch FROM (finished_at - started_at)) * 1000 - 2000 AS ms FROM g)
        SELECT count(*) * 60.0 / greatest(extract(epoch FROM (max(finished_at) - min(created_at))), 0.001),
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM o),
               (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM o)
        FROM g" >"$tmp/stats.txt"
    psql -At -F ' ' "$FARM_DATABASE_URL" -c "
        SELECT coalesce(extract(epoch FROM (started_at - created_at)) * 1000, -1),
               coalesce(extract(epoch FROM (finished_at - created_at)) * 1000, -1)
        FROM generations WHERE user_id = '$pro_user'" >"$tmp/pro.txt"
    local per_min p50 p99 pro_wait pro_done
    read -r per_min p50 p99 <"$tmp/stats.txt"
    read -r pro_wait pro_done <"$tmp/pro.txt" || true
    awk -v label="$label" -v c="$per_min" -v a="$p50" -v b="$p99" -v r="$rss" \
        -v w="${pro_wait:--1}" -v d="${pro_done:--1}" 'BEGIN {
        printf "%s: %d completions/min, overhead p50 %.0f ms p99 %.0f ms (total - provider time), worker RSS %.0f MB, pro job queue wait %.0f ms (done in %.0f ms)\n",
            label, c, a, b, r / 1024, w, d }'
}
