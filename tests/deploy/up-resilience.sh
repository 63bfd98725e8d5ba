#!/usr/bin/env bash
#
# tests/deploy/up-resilience.sh BIN_DIR : scripts/up, for real, from a clone
# in root's home, with a worker killed under it.
#
# A copy of the repository's scripts/ (with migrations/, store/ and imaging/
# linked) is laid in a fresh directory under /root, which is 0700: Postgres's
# unprivileged user cannot traverse it, as in a clone in /root on a fresh
# Debian 12. scripts/up runs there with the binaries of BIN_DIR and must:
#   - come up (Postgres's cluster moved where its user can reach it,
#     var/pg a link to it);
#   - restart worker-1 after a kill -9, saying so, with a longer delay the
#     second time (backoff), the new worker answering /healthz, while the
#     api stays ready;
#   - stop the whole farm, exiting non-zero, when the api is killed, and
#     leave no process behind (farm-api's children included);
#   - come up again from the same clone, on the cluster it moved (var/pg
#     is a link by then), and stop with `scripts/up stop`.
# Not root: the /root part cannot be set up, and the test fails saying so.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=${1:?usage: up-resilience.sh BIN_DIR}
# shellcheck source=scripts/lib.sh
. "$src/scripts/lib.sh"

((EUID == 0)) || gf_die "must run as root: the case under test is a clone in /root"

base=$(mktemp -d /root/genfarm-up-test.XXXXXX)
chmod 0700 /root "$base"
mkdir -p "$base/scripts"
cp "$src/scripts/up" "$src/scripts/workers" "$src/scripts/lib.sh" "$src/scripts/install-deps" \
    "$base/scripts/"
ln -s "$src/migrations" "$base/migrations"
ln -s "$src/store" "$base/store"
ln -s "$src/imaging" "$base/imaging"
pg_home=/var/lib/genfarm/pg-$(printf '%s' "$base" | sha256sum | cut -c1-12)
out=$base/up.out
up_pid=

cleanup() {
    if [[ -n $up_pid ]] && gf_pid_alive "$up_pid"; then
        "$base/scripts/up" stop >/dev/null 2>&1 || true
    fi
    rm -rf "$base" "$pg_home"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "----- scripts/up output -----" >&2
    cat "$out" >&2 || true
    exit 1
}

# wait_for SECONDS CMD... : poll CMD until it succeeds; false on timeout.
wait_for() {
    local n=$(($1 * 10)) i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# Only the clone's own environment: no FARM_* from ctest or the caller.
unset "${!FARM_@}"
FARM_BIN_DIR=$bin_dir FARM_LOG_LEVEL=warn FARM_WORKER_DRAIN_S=7 "$base/scripts/up" >"$out" 2>&1 </dev/null &
up_pid=$!

wait_for 180 test -s "$base/var/dev.env" || fail "scripts/up did not come up within 180 s"
echo "up: farm is up from $base"

# Postgres's user cannot reach /root: its cluster is in $pg_home.
[[ -L $base/var/pg && $(readlink -f "$base/var/pg") == "$pg_home/data" ]] ||
    fail "var/pg is not a link to $pg_home/data"
grep -q "cannot get through /root" "$out" || fail "scripts/up did not say why Postgres moved"
[[ -s $pg_home/data/postmaster.pid ]] || fail "no postmaster.pid in $pg_home/data"
echo "up: Postgres's cluster is in $pg_home/data (var/pg links there)"

# shellcheck disable=SC1091
. "$base/var/ports.env"
api=http://127.0.0.1:$API_PORT

# scripts/workers from a shell without the farm's settings: its worker gets the
# ones scripts/up started the farm's with (FARM_WORKER_DRAIN_S=7 above, the
# secrets), from var/farm.env, which only its owner may read.
[[ $(stat -c %a "$base/var/farm.env") == 600 ]] || fail "var/farm.env is not mode 600"
env -i PATH="$PATH" HOME="$HOME" FARM_BIN_DIR="$bin_dir" "$base/scripts/workers" 1 >>"$out" 2>&1 ||
    fail "scripts/workers 1 failed"
xpid=$(gf_read_pidfile "$base/var/run/worker-x1.pid")
xenv=$(tr '\0' '\n' <"/proc/$xpid/environ")
grep -qx "FARM_WORKER_DRAIN_S=7" <<<"$xenv" || fail "the extra worker lacks the farm's FARM_WORKER_DRAIN_S"
grep -q "^FARM_JWT_SECRET=." <<<"$xenv" || fail "the extra worker lacks the farm's secrets"
env -i PATH="$PATH" HOME="$HOME" FARM_BIN_DIR="$bin_dir" "$base/scripts/workers" 0 >>"$out" 2>&1 ||
    fail "scripts/workers 0 failed"
! gf_pid_alive "$xpid" || fail "scripts/workers 0 left worker-x1 (pid $xpid) running"
echo "up: scripts/workers 1 from an empty environment started a worker with the farm's settings"

# worker_pid : worker-1's live pid, if it runs farm-worker.
worker_pid() {
    local pid
    pid=$(gf_read_pidfile "$base/var/run/worker-1.pid")
    [[ -n $pid ]] && gf_pid_alive "$pid" && [[ $(gf_pid_cmdline "$pid") == *farm-worker* ]] &&
        printf '%s\n' "$pid"
}
new_worker() { [[ -n $(worker_pid) && $(worker_pid) != "$1" ]]; }
up_gone() { ! gf_pid_alive "$up_pid"; }

for round in 1 2; do
    old=$(worker_pid) || fail "worker-1 is not running"
    kill -KILL "$old"
    delay=$round # 1 s, then 2 s: the backoff doubles
    wait_for 20 new_worker "$old" || fail "worker-1 (pid $old) was not restarted within 20 s"
    new=$(worker_pid)
    grep -q "worker-1 (pid $old) was killed by signal 9; restarting it in ${delay}s" "$out" ||
        fail "no 'restarting it in ${delay}s' line for pid $old"
    grep -q "worker-1 restarted (pid $new)" "$out" || fail "no 'restarted (pid $new)' line"
    grep -q "restarting it in ${delay}s" "$base/var/log/worker-1.log" ||
        fail "the restart is not in var/log/worker-1.log"
    gf_wait_http "http://127.0.0.1:$WORKER1_METRICS_PORT/healthz" 200 20 "$new" ||
        fail "the restarted worker-1 does not answer /healthz"
    [[ $(gf_http_code "$api/readyz") == 200 ]] || fail "api not ready after the worker's restart"
    gf_pid_alive "$up_pid" || fail "scripts/up exited when a worker died"
    echo "up: worker-1 killed (pid $old), restarted after ${delay}s as pid $new, /healthz 200"
done

# The api is not restarted: its death stops the farm.
api_pid=$(gf_read_pidfile "$base/var/run/api.pid")
redis_pid=$(gf_read_pidfile "$base/var/run/redis.pid")
pg_pid=$(gf_read_pidfile "$pg_home/data/postmaster.pid")
kill -KILL "$api_pid"
rc=0
wait_for 60 up_gone || fail "scripts/up still runs 60 s after the api died"
wait "$up_pid" || rc=$?
up_pid=
((rc != 0)) || fail "scripts/up exited 0 after the api died"
grep -q "api exited unexpectedly; stopping the farm" "$out" || fail "no 'api exited' line"
for p in "$redis_pid" "$pg_pid"; do
    ! gf_pid_alive "$p" || fail "pid $p still runs after the farm stopped"
done
# Nor any process of the farm: farm-api's forked children were in the
# killed parent's process group, not in a PID file.
for p in /proc/[0-9]*; do
    [[ $(readlink "$p/cwd" 2>/dev/null) == "$base"* ]] &&
        fail "process ${p#/proc/} ($(gf_pid_cmdline "${p#/proc/}")) still runs in $base"
done
echo "up: api killed: scripts/up stopped Redis and Postgres and exited $rc"

# Again, from the same clone: var/pg is a link to the cluster the first run
# moved, and scripts/up starts on it.
rm -f "$base/var/dev.env"
: >"$out"
FARM_BIN_DIR=$bin_dir FARM_LOG_LEVEL=warn "$base/scripts/up" >"$out" 2>&1 </dev/null &
up_pid=$!
up_ready_or_gone() { test -s "$base/var/dev.env" || up_gone; }
wait_for 180 up_ready_or_gone
[[ -s $base/var/dev.env ]] || fail "scripts/up did not come up again (it exited, or 180 s passed)"
[[ $(readlink -f "$base/var/pg") == "$pg_home/data" ]] || fail "var/pg no longer links to $pg_home/data"
# shellcheck disable=SC1091
. "$base/var/ports.env"
[[ $(gf_http_code "http://127.0.0.1:$API_PORT/readyz") == 200 ]] || fail "api not ready on the second start"
# scripts/up stop stops scripts/workers' extra workers too (they used to run on,
# against the next start's Redis and Postgres, with the old binary and secrets).
env -i PATH="$PATH" HOME="$HOME" FARM_BIN_DIR="$bin_dir" "$base/scripts/workers" 2 >>"$out" 2>&1 ||
    fail "scripts/workers 2 failed"
xpids=$(cat "$base"/var/run/worker-x*.pid)
[[ $(wc -w <<<"$xpids") == 2 ]] || fail "scripts/workers 2 did not start two workers"
"$base/scripts/up" stop >/dev/null 2>&1 || fail "scripts/up stop failed"
wait_for 60 up_gone || fail "scripts/up still runs 60 s after scripts/up stop"
up_pid=
for p in $xpids; do
    ! gf_pid_alive "$p" || fail "scripts/up stop left the extra worker pid $p running"
done
for p in /proc/[0-9]*; do
    [[ $(readlink "$p/cwd" 2>/dev/null) == "$base"* ]] &&
        fail "process ${p#/proc/} ($(gf_pid_cmdline "${p#/proc/}")) still runs in $base after stop"
done
echo "up: started again on the moved cluster, ready, two extra workers, all stopped"

# A stale var/run/up.pid whose PID another process now has, one with "up" in
# its name: scripts/up stop leaves it alone, and status says nothing runs.
bash -c 'exec -a backup-upkeep sleep 300' &
stranger=$!
echo "$stranger" >"$base/var/run/up.pid"
"$base/scripts/up" stop >/dev/null 2>&1 || fail "scripts/up stop failed on a stale up.pid"
gf_pid_alive "$stranger" || fail "scripts/up stop killed pid $stranger, which is not scripts/up"
kill "$stranger"
echo "up: a stale up.pid naming another process: left alone"
echo "up-resilience: passed"
