# shellcheck shell=bash
#
# scripts/bench.d/ledger.sh: `scripts/bench ledger`, accept + capture pairs
# per second through store/ (bench_ledger, 8 blocking connections) vs.
# `pgbench -N -c 8 -j 2` on the same private Postgres in the same run. The
# two take turns: BENCH_LEDGER_ROUNDS (2) turns each, of BENCH_DURATION
# (10s) / rounds seconds, and the figures are the means of the turns.
# Prints one line:
#
#   ledger: <N> accept+capture/s | pgbench -N <M> tps | ratio <N/M>
#
# (N, M integers; ratio with 3 decimals.) Knobs: BENCH_DURATION,
# BENCH_LEDGER_ROUNDS, FARM_BIN_DIR.
#
# scripts/bench sources this file in a subshell of its own and runs
# bench_ledger; sourcing it defines functions and starts nothing.

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench-lib.sh"

bench_ledger() {
    bench_prepare
    bench_with_servers --migrate "${BASH_SOURCE[0]}" bench_ledger_in_fixture
}

# Runs inside tests/fixture/with-servers (bench_with_servers).
bench_ledger_in_fixture() {
    local secs=${BENCH_DURATION:-10s} rounds=${BENCH_LEDGER_ROUNDS:-2} slice pg_bin r
    local pairs tps pairs_sum=0 tps_sum=0
    secs=${secs%s}
    # Both sides run in turns of secs/rounds seconds (5 + 5 s each by
    # default), so a slow or fast spell of the machine lands on both rather
    # than on whichever ran during it: with one 10 s run each, pgbench alone
    # swung between 10.8k and 14.4k tps from one invocation to the next.
    slice=$((secs / rounds))
    ((slice >= 1)) || gf_die "BENCH_DURATION must be at least BENCH_LEDGER_ROUNDS seconds"
    pg_bin=$(gf_pg_bindir)
    "$pg_bin/pgbench" -q -i "$FARM_DATABASE_URL" >"$FARM_TEST_TMPDIR/pgbench-init.log" 2>&1 ||
        gf_die "pgbench -i failed: $(tail -n 5 "$FARM_TEST_TMPDIR/pgbench-init.log")"
    for ((r = 1; r <= rounds; r++)); do
        gf_info "bench_ledger: round $r/$rounds: 8 connections, ${slice}s of accept + capture"
        pairs=$("$bin/bench_ledger" "$FARM_DATABASE_URL" 8 "$slice")
        gf_info "round $r/$rounds: pgbench -N -c 8 -j 2 -T $slice"
        tps=$("$pg_bin/pgbench" -N -c 8 -j 2 -T "$slice" "$FARM_DATABASE_URL" 2>/dev/null |
            awk '/^tps = / { printf "%d\n", $3 + 0.5; exit }')
        [[ -n $tps ]] || gf_die "could not read pgbench's tps"
        gf_info "round $r/$rounds: $pairs accept+capture/s, pgbench $tps tps"
        pairs_sum=$((pairs_sum + pairs))
        tps_sum=$((tps_sum + tps))
    done
    awk -v n="$pairs_sum" -v m="$tps_sum" -v r="$rounds" 'BEGIN {
        printf "ledger: %d accept+capture/s | pgbench -N %d tps | ratio %.3f\n", n / r + 0.5, m / r + 0.5, (m > 0 ? n / m : 0)
    }'
}
