#!/usr/bin/env bash
# fuzz.sh SECONDS: run every Fuzz target of the module for SECONDS each.
set -euo pipefail
secs=${1:-5}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  for t in $targets; do
    echo "fuzz: $pkg $t ${secs}s"
    go test -run='^$' -fuzz="^${t}\$" -fuzztime="${secs}s" "$pkg" >/tmp/edgeseal-fuzz.log 2>&1 || { cat /tmp/edgeseal-fuzz.log; exit 1; }
  done
done
echo "fuzz: all targets ran"
