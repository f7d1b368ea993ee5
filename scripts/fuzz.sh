#!/usr/bin/env bash
# fuzz.sh SECONDS: run every Fuzz target of the module for SECONDS each.
#
# A short -fuzztime can end while a worker is still in its first inputs; the
# go command then reports "context deadline exceeded" without any failing
# input (no "Failing input written to"). That is the harness, not a finding:
# such a run is repeated once with twice the time. A real crash writes its
# input under testdata/fuzz and fails at once.
#
# The deadline mostly lands while the coordinator minimizes a new input, so
# runs of 10 s or less (make test) do not minimize (-fuzzminimizetime=0):
# a failing input is still written, unminimized. make fuzz minimizes.
set -euo pipefail
secs=${1:-5}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
minimize=()
if [ "$secs" -le 10 ]; then
  minimize=(-fuzzminimizetime=0)
fi
run() { go test -run='^$' -fuzz="^${2}\$" -fuzztime="${3}s" "${minimize[@]}" "$1" >"$log" 2>&1; }
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  for t in $targets; do
    echo "fuzz: $pkg $t ${secs}s"
    if run "$pkg" "$t" "$secs"; then continue; fi
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
      echo "fuzz: $t: the fuzz harness timed out without a finding; running it once more"
      if run "$pkg" "$t" $((secs * 2)); then continue; fi
    fi
    cat "$log"
    exit 1
  done
done
echo "fuzz: all targets ran"
