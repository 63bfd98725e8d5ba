# shellcheck shell=bash
#
# scripts/bench-lib.sh: what the benchmarks in scripts/bench.d/ share: the
# release binaries they measure, the private servers they run against, and
# running wrk and reading its output. Each benchmark file sources it. It
# sources scripts/lib.sh, sets `root` and `wrk_args`, and runs nothing.

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The repository's top directory.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# wrk's arguments wherever a benchmark runs it; BENCH_DURATION is its -d.
wrk_args=(-t2 -c64 "-d${BENCH_DURATION:-10s}" --latency)

# bench_prepare [CMD...] : install the dependencies, fail unless every CMD is
# on PATH, and set $bin to a directory holding the release binaries:
# FARM_BIN_DIR when set (no build), else build/release, built now. Then
# unsets FARM_BIN_DIR: it is the bench's knob, not the farm's, and the
# farm's config warns about FARM_* variables it does not know.
# shellcheck disable=SC2120  # CMD... is optional
bench_prepare() {
    bash "$root/scripts/install-deps"
    (($# == 0)) || gf_need_cmd "$@"
    if [[ -n ${FARM_BIN_DIR:-} ]]; then
        bin=$(cd "$FARM_BIN_DIR" && pwd)
        unset FARM_BIN_DIR
        return 0
    fi
    bin=$root/build/release
    mkdir -p "$root/build"
    gf_info "building release (log: build/bench-build.log)"
    if ! {
        cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release &&
            cmake --build "$root/build/release" -j2
    } >"$root/build/bench-build.log" 2>&1; then
        tail -n 40 "$root/build/bench-build.log" >&2
        gf_die "build failed (full log: build/bench-build.log)"
    fi
}

# bench_with_servers [--migrate] FILE FUNCTION [ARG...] : run FUNCTION ARG...
# in a new bash under tests/fixture/with-servers, which gives it a private
# Redis and Postgres (FARM_REDIS_URL, FARM_DATABASE_URL) and a temp dir
# (FARM_TEST_TMPDIR) it removes afterwards. That bash sources FILE (the
# benchmark's own, where FUNCTION is), runs with `set -euo pipefail`, and
# finds the binaries in $bin. --migrate has the fixture apply the
# migrations with $bin/farm first. Returns FUNCTION's exit status.
bench_with_servers() {
    local migrate=()
    if [[ $1 == --migrate ]]; then
        migrate=(FARM_TEST_CLI="$bin/farm" FARM_MIGRATIONS_DIR="$root/migrations")
        shift
    fi
    # $0 of that bash is "bench", the name its messages go out under.
    # shellcheck disable=SC2016  # the inner bash expands $1, $GF_BENCH_BIN, $@
    env "${migrate[@]}" GF_BENCH_BIN="$bin" "$root/tests/fixture/with-servers" \
        bash -c 'set -euo pipefail; . "$1"; bin=$GF_BENCH_BIN; shift; "$@"' bench "$@"
}

# bench_clear_test_env : unset the fixture's FARM_TEST_* variables (and any
# FARM_CLI): they are for tests, not for the farm processes a benchmark
# starts. Read FARM_TEST_TMPDIR before calling this.
bench_clear_test_env() {
    local v
    for v in $(compgen -e | grep -E '^FARM_(TEST_|CLI$)' || true); do
        unset "$v"
    done
}

# bench_cpu_ticks PID... : the CPU clock ticks (utime + stime) of each PID
# and of its live descendants, summed (a process's threads included; every
# Postgres backend under the postmaster).
bench_cpu_ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
        # shellcheck disable=SC2046  # one word per child PID
        sum=$((sum + ${t:-0} + $(bench_cpu_ticks $(pgrep -P "$p" || true))))
    done
    echo "$sum"
}

# bench_reaped_ticks : the CPU clock ticks of the shell's children that it
# has waited for (cutime + cstime of $$, not of a subshell calling this),
# which include what their own reaped children used: a command
# substitution's wrk, for one.
bench_reaped_ticks() {
    awk '{print $16 + $17}' "/proc/$$/stat"
}

# wrk_run NAME URL : run wrk against URL and print "<req/s> <p99 ms>", the
# req/s rounded to an integer and p99 with 2 decimals. Warns on stderr when
# wrk saw errors or non-2xx answers (the numbers would flatter the server).
wrk_run() {
    local name=$1 url=$2 out
    gf_info "wrk ${wrk_args[*]} $url"
    out=$(wrk "${wrk_args[@]}" "$url") || gf_die "wrk failed against $name: $out"
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        gf_warn "$name: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ';')"
    fi
    # wrk prints latencies as e.g. 812.00us, 1.25ms, 1.02s, 1.50m.
    awk '
        /^[ \t]+99%/ {
            v = $2; unit = v; sub(/^[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
            f = (unit == "us") ? 0.001 : (unit == "ms") ? 1 : (unit == "s") ? 1000 : (unit == "m") ? 60000 : -1
            if (f < 0) { print "unknown latency unit: " $2 > "/dev/stderr"; exit 1 }
            p99 = v * f
        }
        /^Requests\/sec:/ { rps = $2 }
        END {
            if (rps == "" || p99 == "") { print "could not parse wrk output" > "/dev/stderr"; exit 1 }
            printf "%d %.2f\n", rps + 0.5, p99
        }' <<<"$out"
}

# wrk_full NAME URL [SCRIPT] : like wrk_run, with p50 and the non-2xx count:
# "<req/s> <p50> <p99> <non2xx>"; SCRIPT is a wrk Lua script (-s).
wrk_full() {
    local name=$1 url=$2 script=${3:-} out
    gf_info "wrk ${wrk_args[*]} $url ${script:+-s $script}"
    out=$(wrk "${wrk_args[@]}" ${script:+-s "$script"} "$url") || gf_die "wrk failed against $name"
    awk '
        function ms(v,   unit) { unit = v; sub(/^[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
            return v * ((unit == "us") ? 0.001 : (unit == "ms") ? 1 : (unit == "s") ? 1000 : 60000) }
        /^[ \t]+50%/ { p50 = ms($2) }
        /^[ \t]+99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        END { printf "%d %.2f %.2f %d\n", rps + 0.5, p50, p99, bad + 0 }' <<<"$out"
}
