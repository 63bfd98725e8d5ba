#!/usr/bin/env bash
#
# tests/prometheus/rules.sh: checks deploy/prometheus/ (ctest prometheus_rules).
#   1. promtool check rules: the rules parse and their expressions are valid;
#   2. promtool test rules: every case of genfarm-rules.test.yml holds;
#   3. every alert has a case that fires it and one that does not
#      (an empty exp_alerts);
#   4. every runbook_url names a heading of docs/operations.md;
#   5. every farm_* metric the rules read is one the farm's C code registers;
#   6. every file of the repository the rules name exists, and every `farm
#      COMMAND` the runbooks (docs/operations.md) name is one farm dispatches.
# promtool comes from Debian's prometheus package (scripts/install-deps).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=$root/deploy/prometheus
rules=$dir/genfarm-rules.yml
tests=$dir/genfarm-rules.test.yml
fail=0

promtool check rules "$rules"
(cd "$dir" && promtool test rules "$(basename "$tests")")

alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\) *$/\1/p' "$rules")
[[ -n $alerts ]] || { echo "rules.sh: no alert found in $rules" >&2; exit 1; }

# The cases per alert: "fires NAME" or "quiet NAME", from each alertname line
# and the exp_alerts line after it.
cases=$(awk '
    /^ *alertname:/ { name = $2; next }
    /^ *exp_alerts:/ && name != "" {
        print (($0 ~ /exp_alerts: *\[\] *$/) ? "quiet " : "fires ") name
        name = ""
    }' "$tests")
for a in $alerts; do
    grep -qx "fires $a" <<<"$cases" || { echo "rules.sh: no test fires $a" >&2; fail=1; }
    grep -qx "quiet $a" <<<"$cases" || { echo "rules.sh: no test keeps $a quiet" >&2; fail=1; }
done

# Runbooks: docs/operations.md#name is the heading "### Name" (GitHub's anchor
# of a heading is its text in lower case).
for anchor in $(sed -n 's|^ *runbook_url: *docs/operations.md#\(.*\)$|\1|p' "$rules"); do
    grep -qi "^### $anchor\$" "$root/docs/operations.md" ||
        { echo "rules.sh: docs/operations.md has no heading for #$anchor" >&2; fail=1; }
done
n_alerts=$(wc -w <<<"$alerts")
n_runbooks=$(grep -c '^ *runbook_url: *docs/operations.md#' "$rules")
[[ $n_alerts == "$n_runbooks" ]] ||
    { echo "rules.sh: $n_alerts alerts but $n_runbooks runbook links" >&2; fail=1; }

# Metrics: each name read (a histogram's _bucket/_sum/_count are its family's)
# must be registered, as a string literal, somewhere in the farm's sources.
# (A name followed by "*" is prose about a prefix, not a metric.)
for m in $(grep -v '^ *#' "$rules" | grep -oP 'farm_[a-z0-9_]+(?![a-z0-9_*])' | sort -u); do
    family=$(sed -E 's/_(bucket|sum|count)$//' <<<"$m")
    grep -rqF "\"$family\"" "$root"/{api,core,queue,store,worker,providers,webhooks,storage} --include='*.c' ||
        { echo "rules.sh: $m is not a metric the farm exports" >&2; fail=1; }
done

# Paths: scripts/, tests/, docs/ and deploy/ files named in the rules (comments too).
for path in $(grep -oE '\b(scripts|tests|docs|deploy)/[A-Za-z0-9_./-]*[A-Za-z0-9_]' "$rules" | sort -u); do
    [[ -e $root/$path ]] || { echo "rules.sh: $rules names $path, which does not exist" >&2; fail=1; }
done
# Commands: `farm WORD` in the runbooks against api/farm.c's dispatch.
for cmd in $(grep -oE '`farm [a-z-]+' "$root/docs/operations.md" | sed 's/^`farm //' | sort -u); do
    grep -qF "strcmp(argv[1], \"$cmd\")" "$root/api/farm.c" ||
        { echo "rules.sh: docs/operations.md names \`farm $cmd\`, which farm does not know" >&2; fail=1; }
done

exit $fail
