# shellcheck shell=bash
#
# scripts/lib.sh: small bash helpers shared by scripts/up, scripts/bench and
# tests/fixture/with-servers. Source it; it defines functions and one
# variable (GF_PG_USER_NAME) and runs nothing.
#
# Conventions: every function returns 0 on success and non-zero on failure,
# messages go to stderr prefixed with the calling script's name, and nothing
# here changes shell options (the callers run with `set -euo pipefail`).

# The unprivileged system user that runs Postgres when we are root
# (postgres refuses to run as root).
GF_PG_USER_NAME=genfarm

# --- messages ---------------------------------------------------------------

gf_info() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
gf_warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
gf_die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

# gf_need_cmd CMD... : fail with an install hint unless every CMD is on PATH.
gf_need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            gf_die "'$c' not found; run scripts/install-deps (as root) first"
    done
}

# --- processes --------------------------------------------------------------

# gf_pid_alive PID : true if PID is a live process (zombies count as dead).
gf_pid_alive() {
    local pid=$1 line state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    read -r line 2>/dev/null <"/proc/$pid/stat" || return 1
    # Field 3 of /proc/PID/stat is the state; the comm field before it may
    # contain spaces, so take what follows the last ')'.
    state=${line##*) }
    state=${state%% *}
    [[ -n $state && $state != Z && $state != X ]]
}

# gf_pid_comm PID : print the process's short name (comm), or nothing.
gf_pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# gf_pid_cmdline PID : print the process's command line, spaces between args.
gf_pid_cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# gf_wait_gone PID SECONDS : wait until PID is dead; false on timeout.
gf_wait_gone() {
    local pid=$1 i n=$(($2 * 20))
    for ((i = 0; i < n; i++)); do
        gf_pid_alive "$pid" || return 0
        sleep 0.05
    done
    ! gf_pid_alive "$pid"
}

# gf_env_number FILE NAME DEFAULT : NAME's value in FILE (a file of
# NAME=value lines, read by bash alone, whatever FARM_* this shell has), if a
# number, else DEFAULT.
gf_env_number() {
    local v=''
    [[ -r $1 ]] && v=$(
        unset "${!FARM_@}"
        # shellcheck disable=SC1090
        . "$1"
        printf '%s' "${!2:-}"
    )
    [[ $v =~ ^[0-9]+$ ]] || v=$3
    printf '%s\n' "$v"
}

# gf_stop_pid PID [SIGNAL] [SECONDS] : send SIGNAL (default TERM), wait up to
# SECONDS (default 5) for the process to exit, then SIGKILL it.
gf_stop_pid() {
    local pid=$1 sig=${2:-TERM} secs=${3:-5}
    gf_pid_alive "$pid" || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    gf_wait_gone "$pid" "$secs" && return 0
    kill -s KILL "$pid" 2>/dev/null || true
    gf_wait_gone "$pid" 2
}

# gf_read_pidfile FILE : print the first line of FILE if it is a number.
gf_read_pidfile() {
    local pid=''
    if [[ -r $1 ]]; then
        read -r pid 2>/dev/null <"$1" || true
    fi
    if [[ $pid =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$pid"
    fi
}

# --- ports ------------------------------------------------------------------

# gf_port_free PORT : true if nothing listens on 127.0.0.1:PORT (or on the
# wildcard address for that port).
gf_port_free() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        # -H: no header; any output line means a listener on that port.
        [[ -z $(ss -Htln "sport = :$port" 2>/dev/null) ]]
    else
        # Fallback: try to connect; success means somebody is listening.
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# gf_port_pick : print a random free TCP port. Ports are drawn below the
# kernel's ephemeral range (ip_local_port_range), so they cannot clash with
# the local ports of outgoing connections. Two callers racing for the same
# port is still possible; callers retry when their server fails to bind.
gf_port_pick() {
    local lo=20000 hi=32767 eph port i
    if read -r eph _ 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range &&
        ((eph > lo + 1000)); then
        hi=$((eph - 1))
    fi
    for ((i = 0; i < 200; i++)); do
        port=$((lo + ${SRANDOM:-$RANDOM} % (hi - lo + 1)))
        if gf_port_free "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    gf_warn "no free port found in $lo-$hi"
    return 1
}

# --- HTTP -------------------------------------------------------------------

# gf_http_code URL : print the HTTP status of GET URL ("000" if no answer).
gf_http_code() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# gf_wait_http URL CODE SECONDS [PID] : poll URL until it answers CODE; false
# on timeout, or early if PID (the server) is given and exits.
gf_wait_http() {
    local url=$1 want=$2 secs=$3 pid=${4:-} i n
    n=$((secs * 10))
    for ((i = 0; i < n; i++)); do
        [[ $(gf_http_code "$url") == "$want" ]] && return 0
        if [[ -n $pid ]] && ! gf_pid_alive "$pid"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# --- running as the Postgres user ---------------------------------------------

# gf_pg_user : print the user Postgres must run as: GF_PG_USER_NAME when we
# are root, empty (= ourselves) otherwise.
gf_pg_user() {
    if ((EUID == 0)); then printf '%s\n' "$GF_PG_USER_NAME"; fi
}

# gf_pg_user_ensure : when root, create the Postgres system user if missing.
# Safe when several copies race (useradd takes a lock; we re-check after).
gf_pg_user_ensure() {
    ((EUID == 0)) || return 0
    local i
    for ((i = 0; i < 20; i++)); do
        id -u "$GF_PG_USER_NAME" >/dev/null 2>&1 && return 0
        useradd --system --no-create-home --shell /usr/sbin/nologin \
            "$GF_PG_USER_NAME" >/dev/null 2>&1 || sleep 0.1
    done
    id -u "$GF_PG_USER_NAME" >/dev/null 2>&1 ||
        gf_die "could not create system user '$GF_PG_USER_NAME'"
}

# gf_as_pg CMD [ARGS...] : run CMD as the Postgres user (see gf_pg_user).
# When switching users it runs from / so that an unreadable current
# directory (e.g. under /root) cannot upset the Postgres tools.
gf_as_pg() {
    local u
    u=$(gf_pg_user)
    if [[ -z $u ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$u" -- "$@")
    else
        (cd / && su -s /bin/sh "$u" -c "$(printf '%q ' "$@")")
    fi
}

# gf_as_pg_string CMD [ARGS...] : print a command line for `sh -c` that runs
# CMD as the Postgres user (used to hand start/stop commands to tests).
gf_as_pg_string() {
    local u cmd
    u=$(gf_pg_user)
    cmd=$(printf '%q ' "$@")
    cmd=${cmd% }
    if [[ -z $u ]]; then
        printf '%s\n' "$cmd"
    elif command -v runuser >/dev/null 2>&1; then
        printf 'cd / && runuser -u %q -- %s\n' "$u" "$cmd"
    else
        printf 'cd / && su -s /bin/sh %q -c %q\n' "$u" "$cmd"
    fi
}

# gf_pg_can_reach DIR : true if the Postgres user can create files in DIR
# (every parent directory must be traversable by it). When it cannot, print
# the first parent directory that blocks it.
gf_pg_can_reach() {
    local dir=$1 d=/ part parts
    gf_as_pg test -w "$dir" -a -x "$dir" && return 0
    IFS=/ read -ra parts <<<"$dir"
    for part in "${parts[@]}"; do
        [[ -z $part ]] && continue
        d=${d%/}/$part
        if ! gf_as_pg test -x "$d"; then
            printf '%s\n' "$d"
            return 1
        fi
    done
    printf '%s\n' "$dir"
    return 1
}

# --- Postgres -----------------------------------------------------------------

# gf_pg_bindir : print the newest /usr/lib/postgresql/*/bin with initdb in it.
gf_pg_bindir() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] ||
        gf_die "no Postgres server found under /usr/lib/postgresql; run scripts/install-deps"
    printf '%s\n' "$d"
}

# gf_pg_initdb BINDIR DATADIR : create a cluster (trust auth, superuser
# "farm", UTF8) in DATADIR, which must not exist or be empty, and whose parent
# the Postgres user can write.
gf_pg_initdb() {
    local bin=$1 data=$2 out
    if ! out=$(gf_as_pg "$bin/initdb" -D "$data" --auth=trust -U farm \
        -E UTF8 --locale=C --no-sync 2>&1); then
        printf '%s\n' "$out" >&2
        gf_warn "initdb failed for $data"
        return 1
    fi
}

# gf_pg_write_conf DATADIR PORT SOCKDIR [durable] : write our settings to
# DATADIR/farm.conf and include it from postgresql.conf (once). Rewriting it
# with another port is how a start is retried on a new port. SOCKDIR ''
# means no Unix socket. Unless "durable" is given, durability is traded for
# speed (fsync, synchronous_commit, full_page_writes off): right for
# throwaway test clusters, wrong for data worth keeping.
gf_pg_write_conf() {
    local data=$1 port=$2 sock=$3 durable=${4:-} fast=''
    if [[ $durable != durable ]]; then
        fast=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off'
    fi
    # shellcheck disable=SC2016  # $1 is expanded by the inner sh
    gf_as_pg sh -c 'cat >"$1"' sh "$data/farm.conf" <<EOF
# Written by genfarm's scripts; included from postgresql.conf.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 200
$fast
EOF
    if ! grep -q "^include_if_exists = 'farm.conf'" "$data/postgresql.conf"; then
        gf_as_pg sh -c "printf '%s\n' \"include_if_exists = 'farm.conf'\" >>\"\$1\"" \
            sh "$data/postgresql.conf"
    fi
}

# gf_pg_start BINDIR DATADIR LOGFILE : start the cluster and wait until it
# accepts connections (pg_ctl -w); false if it did not come up.
gf_pg_start() {
    local bin=$1 data=$2 log=$3
    gf_as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start >/dev/null 2>&1
}

# gf_pg_stop DATADIR [MODE] : stop the cluster whose postmaster.pid is in
# DATADIR by signal (TERM = smart, INT = fast, QUIT = immediate; default
# fast), then SIGKILL after a grace period. The pid is checked against the
# data directory so a stale pid file never kills an unrelated process.
gf_pg_stop() {
    local data=$1 mode=${2:-fast} sig pid
    case $mode in
    smart) sig=TERM ;; fast) sig=INT ;; immediate) sig=QUIT ;;
    *) gf_die "gf_pg_stop: unknown mode $mode" ;;
    esac
    pid=$(gf_read_pidfile "$data/postmaster.pid")
    [[ -n $pid ]] || return 0
    gf_pid_alive "$pid" || return 0
    [[ $(gf_pid_cmdline "$pid") == *"$data"* ]] || return 0
    gf_stop_pid "$pid" "$sig" 10
}

# --- Redis --------------------------------------------------------------------

# gf_redis_write_conf FILE PORT DIR PIDFILE LOGFILE : write a config for a
# private, daemonized Redis with AOF on (fsync every second) and no RDB
# snapshots. `redis-server FILE` then starts (or restarts) that Redis.
gf_redis_write_conf() {
    local file=$1 port=$2 dir=$3 pidfile=$4 log=$5
    cat >"$file" <<EOF
# Written by genfarm's scripts. Start with: redis-server $file
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $pidfile
logfile $log
dir $dir
appendonly yes
appendfsync everysec
save ""
EOF
}

# gf_redis_start CONF PORT PIDFILE [SECONDS] : start redis-server CONF and
# wait for PING on PORT. Returns 0 when up, 1 on failure (see its log).
#
# A daemonized redis writes its pid file only after it has bound its port,
# so a live pid in PIDFILE means the port is ours; we ping only then, which
# also keeps us from talking to whoever else may hold the port.
gf_redis_start() {
    local conf=$1 port=$2 pidfile=$3 secs=${4:-10} i n pid
    rm -f "$pidfile"
    redis-server "$conf" >/dev/null 2>&1 || return 1
    n=$((secs * 20))
    for ((i = 0; i < n; i++)); do
        pid=$(gf_read_pidfile "$pidfile")
        if [[ -n $pid ]] && gf_pid_alive "$pid"; then
            [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] &&
                return 0
        elif ((i > 40)); then
            # No live pid after 2 s: it failed to bind (or to start at all).
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# gf_redis_stop PIDFILE : stop the redis-server named in PIDFILE.
gf_redis_stop() {
    local pid
    pid=$(gf_read_pidfile "$1")
    [[ -n $pid ]] || return 0
    [[ $(gf_pid_comm "$pid") == redis-server* ]] || return 0
    gf_stop_pid "$pid" TERM 5
}
