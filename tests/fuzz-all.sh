#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each, FUZZJOBS at a
# time (each with one fuzzing worker), and keeps a log per target under
# out/fuzz/. A target that finds a failing input fails the run (Go keeps
# the input under the package's testdata/fuzz as a new seed); Go's engine
# sometimes ends a run with "context deadline exceeded" and no failing
# input, which is named at the end and does not fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZJOBS=${FUZZJOBS:-1}
logs=out/fuzz
rm -rf "$logs"
mkdir -p "$logs"

targets=()
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    targets+=("$pkg $t")
  done
done
echo "fuzzing ${#targets[@]} targets for $FUZZTIME each, $FUZZJOBS at a time; logs in $logs/"

run_one() {
  local pkg=$1 t=$2 log
  log=$logs/$(echo "${pkg#github.com/devattest/devattest/}" | tr / _)_$t.log
  if $GO test -run='^$' -fuzz="^$t\$" -fuzztime="$FUZZTIME" -parallel=1 -fuzzminimizetime=100x "$pkg" > "$log" 2>&1; then
    echo "ok    $pkg $t"
  elif grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
    echo "FAIL  $pkg $t (see $log)"
  else
    echo "flaky $pkg $t: the engine timed out without a failing input"
  fi
}
export -f run_one
export GO FUZZTIME logs

printf '%s\n' "${targets[@]}" | xargs -P "$FUZZJOBS" -L 1 bash -c 'run_one "$0" "$1"' > "$logs/summary.txt"
sort -k2 "$logs/summary.txt"
if grep -q '^FAIL' "$logs/summary.txt"; then
  exit 1
fi
