# shellcheck shell=bash
#
# scripts/bench.d/http.sh: `scripts/bench http`, farm-api's GET /healthz vs.
# nginx's `return 200 "ok"` (one worker, no access log) as a baseline, each
# under `wrk -t2 -c64 -d10s --latency`. Prints one line:
#
#   http_healthz: farm <N> req/s p99 <ms> | nginx <M> req/s p99 <ms> | ratio <N/M>
#
# (N, M integers; p99 in milliseconds, 2 decimals; ratio N/M, 2 decimals.)
# Knobs: BENCH_DURATION (wrk's -d, 10s), FARM_LOG_LEVEL (the api's, warn),
# FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_http; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_http() {
    bench_prepare wrk nginx curl
    [[ -x $bin/farm-api ]] || gf_die "$bin/farm-api is missing"
    # The api wants Redis and Postgres for /readyz; give it private ones.
    bench_with_servers "${BASH_SOURCE[0]}" bench_http_in_fixture
}

# Runs inside tests/fixture/with-servers (bench_with_servers).
bench_http_in_fixture() {
    local tmp=$FARM_TEST_TMPDIR api_port nginx_port
    bench_clear_test_env
    # Stop what we started, by PID, however we leave. (Globals: the EXIT
    # trap runs after this function's locals are gone.)
    api_pid='' nginx_pid=''
    trap '[[ -n $api_pid ]] && gf_stop_pid "$api_pid" TERM 5
          [[ -n $nginx_pid ]] && gf_stop_pid "$nginx_pid" TERM 5
          true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # farm-api on a free port.
    api_port=$(gf_port_pick)
    FARM_API_HOST=127.0.0.1 FARM_API_PORT=$api_port FARM_API_PROCESSES=1 FARM_LOG_LEVEL=${FARM_LOG_LEVEL:-warn} \
        FARM_JWT_SECRET=bench-secret-0123456789 FARM_FILE_SECRET=bench-file-secret-0123456789 \
        "$bin/farm-api" </dev/null >"$tmp/api.log" 2>&1 &
    api_pid=$!
    if ! gf_wait_http "http://127.0.0.1:$api_port/healthz" 200 20 "$api_pid"; then
        tail -n 30 "$tmp/api.log" >&2
        gf_die "farm-api did not answer /healthz on port $api_port"
    fi

    # nginx baseline: everything (pid, logs, temp dirs) inside the temp dir,
    # so it runs as root without touching the system's nginx paths.
    local ngx=$tmp/nginx user_line=
    mkdir -p "$ngx"
    # As root the workers drop privileges; name a user and group that exist
    # on Debian (the compiled-in default group "nobody" does not).
    ((EUID == 0)) && user_line='user nobody nogroup;'
    nginx_port=$(gf_port_pick)
    cat >"$ngx/nginx.conf" <<NGINX
# Baseline for scripts/bench http: the cheapest possible 200 "ok".
$user_line
worker_processes 1;
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ngx/client_body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { return 200 "ok"; }
    }
}
NGINX
    nginx -p "$ngx/" -c "$ngx/nginx.conf" -e "$ngx/error.log" </dev/null >"$ngx/stdout.log" 2>&1 &
    nginx_pid=$!
    if ! gf_wait_http "http://127.0.0.1:$nginx_port/" 200 10 "$nginx_pid"; then
        cat "$ngx/stdout.log" "$ngx/error.log" >&2 2>/dev/null || true
        gf_die "nginx did not answer on port $nginx_port"
    fi

    local farm nginx farm_rps farm_p99 nginx_rps nginx_p99
    farm=$(wrk_run farm "http://127.0.0.1:$api_port/healthz")
    nginx=$(wrk_run nginx "http://127.0.0.1:$nginx_port/")
    read -r farm_rps farm_p99 <<<"$farm"
    read -r nginx_rps nginx_p99 <<<"$nginx"
    awk -v f="$farm_rps" -v fp="$farm_p99" -v n="$nginx_rps" -v np="$nginx_p99" 'BEGIN {
        printf "http_healthz: farm %d req/s p99 %.2f | nginx %d req/s p99 %.2f | ratio %.2f\n",
            f, fp, n, np, (n > 0 ? f / n : 0)
    }'
}
