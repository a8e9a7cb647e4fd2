#!/usr/bin/env bash
# The one test command: system packages (where we may install them), then lint, type
# checks and build side by side (they only read the sources; each writes its own
# output), then every test. Prints a line when each phase starts and ends, a
# "still running" line every 30 s meanwhile, the time of each phase at the end, and
# one closing summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
TIMES=()

clock() { # seconds -> m:ss
  printf '%d:%02d' $(($1 / 60)) $(($1 % 60))
}
say() {
  echo "[npm test $(clock $(($(date +%s) - T0)))] $*"
}

# phase NAME COMMAND...: runs in the foreground, output as it comes
phase() {
  local name=$1 start status=0
  shift
  start=$(date +%s)
  say "$name: started"
  "$@" || status=$?
  local took
  took=$(clock $(($(date +%s) - start)))
  TIMES+=("$name $took")
  if [ "$status" = 0 ]; then say "$name: done in $took"; else say "$name: FAILED (exit $status) in $took"; fi
  return "$status"
}

phase "system packages" bash scripts/install-system-deps.sh

# lint, typecheck and build in parallel; each one's output is shown when it ends
declare -A PIDS STARTS
PSTART=$(date +%s)
# The build emits without checking types (build:unchecked): typecheck, beside it,
# checks the same files, so checking them twice would only cost time.
STEPS=(lint typecheck build)
declare -A SCRIPT=([lint]=lint [typecheck]=typecheck [build]=build:unchecked)
for step in "${STEPS[@]}"; do
  STARTS[$step]=$(date +%s)
  npm run --silent "${SCRIPT[$step]}" >"$LOGS/$step.log" 2>&1 &
  PIDS[$step]=$!
  say "$step: started"
done
failed=()
remaining=("${STEPS[@]}")
last_note=$(date +%s)
while [ "${#remaining[@]}" -gt 0 ]; do
  still=()
  for step in "${remaining[@]}"; do
    if kill -0 "${PIDS[$step]}" 2>/dev/null; then
      still+=("$step")
      continue
    fi
    status=0
    wait "${PIDS[$step]}" || status=$?
    took=$(clock $(($(date +%s) - STARTS[$step])))
    TIMES+=("$step $took")
    if [ -s "$LOGS/$step.log" ]; then cat "$LOGS/$step.log"; fi
    if [ "$status" = 0 ]; then
      say "$step: done in $took"
    else
      say "$step: FAILED (exit $status) in $took"
      failed+=("$step")
    fi
  done
  remaining=("${still[@]+"${still[@]}"}")
  if [ "${#remaining[@]}" -gt 0 ]; then
    if [ $(($(date +%s) - last_note)) -ge 30 ]; then
      say "still running: ${remaining[*]}"
      last_note=$(date +%s)
    fi
    sleep 1
  fi
done
PARALLEL_WALL=$(clock $(($(date +%s) - PSTART)))

status=0
if [ "${#failed[@]}" -gt 0 ]; then
  say "not running the tests: ${failed[*]} failed"
  status=1
else
  mkdir -p test-results
  phase tests npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=$?
  node scripts/test-summary.mjs test-results/vitest.json || status=1
fi

echo "time per phase (lint, typecheck and build run side by side; together $PARALLEL_WALL):"
for entry in "${TIMES[@]}"; do
  echo "  ${entry% *}: ${entry##* }"
done
echo "  total: $(clock $(($(date +%s) - T0)))"
exit "$status"
