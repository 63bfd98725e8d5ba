#!/usr/bin/env bash
#
# tests/deploy/multi-container.sh : the farm as containers sharing no disk.
#
# Builds (or reuses) the farm's image with scripts/image and a servers image
# (tests/deploy/servers.Containerfile), then on one private podman network,
# with no volume shared by any two containers:
#   redis, postgres, s3 (s3rver), farm migrate, one farm-api (published on a
#   loopback port for this script), three farm-workers, FARM_STORAGE=s3,
#   leases of 5 s;
#   200 avatar generations are created; the first worker container seen
#   holding jobs is killed (SIGKILL) and another one started;
#   every generation must succeed, every output must download through the
#   api (proxy mode: the api streams the object from S3) and be a real
#   image, and `farm reconcile` must be clean.
# Prints the figures: image size, time to run the 200, the memory and CPU
# of the api and worker containers (podman stats).
#
# Podman here: --runtime runc and explicit --ulimit values (scripts/image
# says why); the network has a fixed subnet and the containers fixed
# addresses, since Debian's CNI setup has no DNS plugin.
#
# Environment: MC_GENERATIONS (200), MC_KEEP=1 keeps the containers.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$src/scripts/lib.sh"
((EUID == 0)) || gf_die "must run as root (podman)"
gf_need_cmd podman runc curl node

n_gen=${MC_GENERATIONS:-200}
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
((nproc > 32768)) && nproc=32768
podman=(podman --runtime runc)
run=("${podman[@]}" run -d --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
tag=$$
net=genfarm-mc-$tag
# A /24 out of 10.89.0.0/16, not in use by another podman network.
sub=$((100 + RANDOM % 150))
prefix=10.89.$sub
ip_redis=$prefix.10 ip_pg=$prefix.11 ip_s3=$prefix.12 ip_api=$prefix.20
tmp=$(mktemp -d)
containers=()

cleanup() {
    local rc=$?
    if ((rc != 0)); then
        for c in "${containers[@]}"; do
            echo "----- logs of $c (last 20 lines) -----" >&2
            "${podman[@]}" logs --tail 20 "$c" >&2 2>&1 || true
        done
    fi
    if [[ ${MC_KEEP:-} != 1 ]]; then
        ((${#containers[@]} == 0)) || "${podman[@]}" rm -f -t 0 "${containers[@]}" >/dev/null 2>&1 || true
        "${podman[@]}" network rm -f "$net" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
say() { echo "multi-container: $*"; }

# --- images ---------------------------------------------------------------------

t0=$(date +%s)
bash "$src/scripts/image" >"$tmp/image.log" 2>&1 || { tail -n 30 "$tmp/image.log" >&2; fail "scripts/image failed"; }
say "$(grep 'built ' "$tmp/image.log" | tail -n 1 | sed 's/^image: //') (scripts/image, $(($(date +%s) - t0)) s with its cache)"
image=localhost/genfarm:latest
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
say "image $image: $((size / 1000000)) MB"

[[ -d $src/tests/s3/node_modules/s3rver ]] || fail "tests/s3/node_modules/s3rver missing: run scripts/install-deps"
mkdir -p "$tmp/ctx"
cp -r "$src/tests/s3" "$tmp/ctx/s3"
"${podman[@]}" build --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
    -f "$src/tests/deploy/servers.Containerfile" -t localhost/genfarm-test-servers:latest \
    "$tmp/ctx" >"$tmp/servers.log" 2>&1 || { tail -n 30 "$tmp/servers.log" >&2; fail "servers image build failed"; }
servers=localhost/genfarm-test-servers:latest

# --- network and servers ----------------------------------------------------------

"${podman[@]}" network create --subnet "$prefix.0/24" "$net" >/dev/null
cname() { printf 'genfarm-mc-%s-%s' "$tag" "$1"; }
start() { # start NAME IP [podman run args...] IMAGE [CMD...]
    local name=$1 ip=$2
    shift 2
    "${run[@]}" --name "$(cname "$name")" --network "$net" --ip "$ip" "$@" >/dev/null
    containers+=("$(cname "$name")")
}

start redis "$ip_redis" "$servers" redis-server --bind 0.0.0.0 --protected-mode no \
    --appendonly yes --appendfsync everysec --save ''
start postgres "$ip_pg" --user postgres "$servers" sh -c '
    set -e
    b=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
    $b/initdb -D /tmp/pg -U farm --auth=trust -E UTF8 --locale=C >/dev/null
    echo "host all all 0.0.0.0/0 trust" >>/tmp/pg/pg_hba.conf
    exec $b/postgres -D /tmp/pg -c listen_addresses="*" -c unix_socket_directories=/tmp -c max_connections=200'
start s3 "$ip_s3" "$servers" node --openssl-legacy-provider /opt/s3/plain.js 0.0.0.0 4568 /tmp/s3 genfarm

wait_tcp() { # wait_tcp IP PORT WHAT
    local i
    for ((i = 0; i < 300; i++)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.2
    done
    fail "$3 did not listen on $1:$2"
}
wait_tcp "$ip_redis" 6379 redis
wait_tcp "$ip_pg" 5432 postgres
wait_tcp "$ip_s3" 4568 s3rver
"${podman[@]}" exec --user postgres "$(cname postgres)" sh -c \
    'until $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/psql -h 127.0.0.1 -U farm -d postgres -Atc "SELECT 1" >/dev/null 2>&1; do sleep 0.2; done
     $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/psql -h 127.0.0.1 -U farm -d postgres -qc "CREATE DATABASE farm"'
say "redis, postgres and s3rver up on $net ($prefix.0/24)"

# --- the farm -------------------------------------------------------------------------

secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
cat >"$tmp/farm.env" <<EOF
FARM_REDIS_URL=redis://$ip_redis:6379/0
FARM_DATABASE_URL=postgresql://farm@$ip_pg:5432/farm
FARM_JWT_SECRET=$(secret)
FARM_FILE_SECRET=$(secret)
FARM_WEBHOOK_SECRET=$(secret)
FARM_STORAGE=s3
FARM_S3_ENDPOINT=http://$ip_s3:4568
FARM_S3_REGION=us-east-1
FARM_S3_BUCKET=genfarm
FARM_S3_PREFIX=mc/
FARM_S3_ACCESS_KEY_ID=S3RVER
FARM_S3_SECRET_ACCESS_KEY=S3RVER
FARM_S3_PATH_STYLE=1
FARM_S3_SERVE=proxy
FARM_PROVIDER=local
FARM_API_PROCESSES=1
FARM_WORKER_CONCURRENCY=16
FARM_QUEUE_LEASE_S=5
FARM_QUEUE_TIERS=pro:4:1000,free:1:1000
FARM_RATE_LIMIT_PER_MIN=100000
FARM_RATE_LIMIT_BURST=100000
FARM_RATE_LIMITS=reads=1000000/1000000
FARM_WELCOME_CREDITS=100000
FARM_LOG_LEVEL=warn
EOF
farm_run() { # farm_run ARGS... : a one-off farm container on the network
    "${podman[@]}" run --rm --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
        --network "$net" --env-file "$tmp/farm.env" "$image" "$@"
}
farm_run farm migrate >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; fail "farm migrate failed"; }
say "farm migrate applied"

api_port=$(gf_port_pick)
start api "$ip_api" --env-file "$tmp/farm.env" -p "127.0.0.1:$api_port:8080" "$image" farm-api
api=http://127.0.0.1:$api_port
gf_wait_http "$api/readyz" 200 60 || fail "the api container did not become ready"
start_worker() {
    local k=$1
    start "worker-$k" "$prefix.$((30 + k))" --env-file "$tmp/farm.env" "$image" farm-worker
}
wait_worker() {
    local k=$1 i
    for ((i = 0; i < 150; i++)); do
        [[ $(gf_http_code "http://$prefix.$((30 + k)):9100/healthz") == 200 ]] && return 0
        sleep 0.2
    done
    fail "worker-$k did not answer /healthz"
}
for k in 1 2 3; do start_worker "$k"; done
for k in 1 2 3; do wait_worker "$k"; done
say "api ready on $api, three workers healthy"

token=$(farm_run farm token --sub 00000000-0000-4000-8000-0000000000c1 --plan pro --ttl 3600)
admin=$(farm_run farm token --sub 00000000-0000-4000-8000-0000000000ad --role admin --ttl 3600)
driver=("node" "$src/tests/deploy/mc-driver.mjs" "$api" "$token" "$tmp/ids")

# --- the generations, a worker killed and replaced mid-run ------------------------------

start_s=$(date +%s.%N)
# The generations are created while the workers are watched: with the local
# provider the three can finish jobs about as fast as they come, so a worker
# holding jobs is looked for from the first POST on, not after the last.
"${driver[@]}" create "$n_gen" &
create_pid=$!
# The jobs a worker holds (its queue id starts with its container's host
# name) go back to the queue when their 5 s lease runs out. The first of the
# three seen holding some is killed (which one gets jobs first is theirs to
# decide), so the kill always takes jobs away.
hosts=()
for k in 1 2 3; do
    hosts+=("$("${podman[@]}" inspect --format '{{.Config.Hostname}}' "$(cname "worker-$k")")")
done
held='' victim=''
for ((i = 0; i < 300; i++)); do
    stats=$(curl -s -H "Authorization: Bearer $admin" "$api/v1/admin/stats")
    read -r victim held < <(node -e 'const s=JSON.parse(process.argv[1]);
        for (const [k, h] of process.argv.slice(2).entries()) {
            const w = s.workers.find(w => w.id.startsWith(h + "-"));
            if (w && w.in_flight > 0) {
                console.log(k + 1, w.in_flight, "of", s.in_flight, "running,",
                    Object.values(s.queued_by_tier).reduce((a, b) => a + b, 0), "queued");
                break;
            }
        }' "$stats" "${hosts[@]}") || true
    [[ -n $held ]] && break
    sleep 0.1
done
[[ -n $held ]] || fail "no worker was ever seen holding a job to be killed with; last stats: $stats"
"${podman[@]}" kill -s KILL "$(cname "worker-$victim")" >/dev/null
start_worker 4
wait_worker 4
say "worker-$victim killed (SIGKILL) holding $held; worker-4 started"
wait "$create_pid" || fail "creating the generations failed"
say "$n_gen generations created"
"${driver[@]}" wait-done "$n_gen"
end_s=$(date +%s.%N)
alive=()
for k in 1 2 3 4; do ((k == victim)) || alive+=("$(cname "worker-$k")"); done
"${podman[@]}" stats --no-stream --format '{{.Name}} mem {{.MemUsage}} cpu {{.CPUPerc}}' \
    "$(cname api)" "${alive[@]}" >"$tmp/stats" 2>&1 || true
"${driver[@]}" check "$n_gen"
say "$(awk -v a="$start_s" -v b="$end_s" -v n="$n_gen" 'BEGIN { printf "%d generations succeeded in %.1f s (%.2f/s), one of three workers killed and replaced", n, b - a, n / (b - a) }')"
while read -r line; do say "podman stats: $line"; done <"$tmp/stats"

farm_run farm reconcile >"$tmp/reconcile.log" 2>&1 || { cat "$tmp/reconcile.log" >&2; fail "farm reconcile found violations"; }
say "farm reconcile: $(tail -n 1 "$tmp/reconcile.log")"

# No volume anywhere: each container's files are its own.
for c in "${containers[@]}"; do
    [[ $("${podman[@]}" inspect --format '{{len .Mounts}}' "$c") == 0 ]] || fail "$c has a mount"
done
say "no container has a volume or bind mount"
echo "multi-container: passed"
