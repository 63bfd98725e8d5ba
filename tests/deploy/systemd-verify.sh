#!/usr/bin/env bash
#
# tests/deploy/systemd-verify.sh BIN_DIR : deploy/systemd's units pass
# `systemd-analyze verify` with nothing to say, and say what the farm needs.
#
# The units name /usr/local/bin/farm*, as installed (deploy/README.md), and
# verify checks that those exist: they are verified in a scratch root
# (--root) holding this system's systemd units, the units under test in
# etc/systemd/system and BIN_DIR's binaries in usr/local/bin. verify exits 0
# even on unknown keys or bad values (it only warns), so any output fails.
# Then, read from the files themselves:
#   - Restart=on-failure but not after exit 2 (RestartPreventExitStatus=2:
#     a bad setting, core/proc.c), KillSignal=SIGTERM, an EnvironmentFile, and the
#     sandbox (NoNewPrivileges, ProtectSystem=strict, ReadWritePaths holding
#     farm.env.example's FARM_STORAGE_DIR) on every long-running unit;
#   - TimeoutStopSec above FARM_SHUTDOWN_S (api) and FARM_WORKER_DRAIN_S
#     (worker), as farm.env.example sets them;
#   - every FARM_* the units and farm.env.example set is in core/config.c;
#   - farm-migrate is a oneshot that does not remain active, which the api and
#     the workers want and start after: each (re)start migrates first.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=${1:?usage: systemd-verify.sh BIN_DIR}
units=$src/deploy/systemd
env_example=$units/farm.env.example
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (package systemd)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib"
cp -r /usr/lib/systemd "$root/usr/lib/"
ln -s usr/lib "$root/lib"
for b in farm farm-api farm-worker; do cp "$bin_dir/$b" "$root/usr/local/bin/"; done

# verify_units DIR UNIT... : print what systemd-analyze verify says of the
# units in DIR (nothing when they are clean); false if it exits non-zero.
verify_units() {
    local dir=$1
    shift
    rm -f "$root"/etc/systemd/system/*
    cp "$dir"/*.service "$root/etc/systemd/system/"
    SYSTEMD_LOG_COLOR=0 systemd-analyze verify --root="$root" --man=no "$@" 2>&1
}

instances=(farm-api.service farm-migrate.service farm-worker@1.service farm-worker@9.service)

# The check must see a warning, or its silence means nothing: a copy with
# an unknown key has to make verify speak.
bad=$(mktemp -d)
cp "$units"/*.service "$bad/"
sed -i 's/^RestartSec=/RestartSecc=/' "$bad/farm-api.service"
out=$(verify_units "$bad" farm-api.service || true)
rm -rf "$bad"
[[ $out == *"Unknown key 'RestartSecc'"* ]] || fail "verify did not report an unknown key: $out"

if ! out=$(verify_units "$units" "${instances[@]}") || [[ -n $out ]]; then
    fail "systemd-analyze verify ${instances[*]}: $out"
else
    echo "systemd: systemd-analyze verify ${instances[*]}: clean"
fi

# key FILE KEY : the values of KEY= in FILE, one per line.
key() { sed -n "s/^$2=//p" "$1"; }
# setting NAME : NAME's value in farm.env.example, else core/config.c's default.
setting() {
    local v
    v=$(key "$env_example" "$1" | tail -n 1)
    [[ -n $v ]] || v=$(sed -n "s/.*{\"$1\", CFG_[A-Z]*, OFF([a-z_]*), \"\\([^\"]*\\)\".*/\\1/p" "$src/core/config.c")
    printf '%s\n' "$v"
}

storage=$(setting FARM_STORAGE_DIR)
for u in farm-api.service farm-worker@.service; do
    f=$units/$u
    [[ $(key "$f" Restart) == on-failure ]] || fail "$u: Restart is not on-failure"
    key "$f" RestartPreventExitStatus | tr ' ' '\n' | grep -qx 2 ||
        fail "$u: RestartPreventExitStatus does not hold 2 (a bad setting would restart forever)"
    [[ $(key "$f" KillSignal) == SIGTERM ]] || fail "$u: KillSignal is not SIGTERM"
    key "$f" EnvironmentFile | grep -qx /etc/genfarm/farm.env || fail "$u: no EnvironmentFile=/etc/genfarm/farm.env"
    [[ $(key "$f" NoNewPrivileges) == yes ]] || fail "$u: NoNewPrivileges is not yes"
    [[ $(key "$f" ProtectSystem) == strict ]] || fail "$u: ProtectSystem is not strict"
    key "$f" ReadWritePaths | grep -q -- "$storage" || fail "$u: ReadWritePaths does not hold $storage"
done
# An upgrade restarts the api and the workers: the migrations must run again first, which
# an active (RemainAfterExit=yes) oneshot would not (systemd starts a wanted unit only
# when it is not active).
[[ $(key "$units/farm-migrate.service" Type) == oneshot ]] || fail "farm-migrate: Type is not oneshot"
[[ $(key "$units/farm-migrate.service" RemainAfterExit) != yes ]] ||
    fail "farm-migrate: RemainAfterExit=yes: a restart of farm-api or a worker would not migrate first"
for u in farm-api.service farm-worker@.service; do
    key "$units/$u" Wants | tr ' ' '\n' | grep -qx farm-migrate.service || fail "$u: does not want farm-migrate.service"
    key "$units/$u" After | tr ' ' '\n' | grep -qx farm-migrate.service || fail "$u: does not start after farm-migrate.service"
done
stop_api=$(key "$units/farm-api.service" TimeoutStopSec)
stop_worker=$(key "$units/farm-worker@.service" TimeoutStopSec)
((stop_api > $(setting FARM_SHUTDOWN_S))) ||
    fail "farm-api: TimeoutStopSec $stop_api is not above FARM_SHUTDOWN_S $(setting FARM_SHUTDOWN_S)"
((stop_worker > $(setting FARM_WORKER_DRAIN_S))) ||
    fail "farm-worker@: TimeoutStopSec $stop_worker is not above FARM_WORKER_DRAIN_S $(setting FARM_WORKER_DRAIN_S)"
echo "systemd: TimeoutStopSec api $stop_api > $(setting FARM_SHUTDOWN_S), worker $stop_worker > $(setting FARM_WORKER_DRAIN_S)"

names=$( {
    sed -n 's/^\(FARM_[A-Z0-9_]*\)=.*/\1/p' "$env_example"
    sed -n 's/^Environment=\(FARM_[A-Z0-9_]*\)=.*/\1/p' "$units"/*.service
} | sort -u)
for n in $names; do
    grep -q "{\"$n\"," "$src/core/config.c" || fail "$n (deploy/systemd) is not in core/config.c's table"
done
echo "systemd: $(wc -w <<<"$names") FARM_* names, all in core/config.c"

if ((failures)); then
    echo "systemd-verify: $failures check(s) failed" >&2
    exit 1
fi
echo "systemd-verify: passed"
