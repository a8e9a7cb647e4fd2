#!/usr/bin/env bash
# The one test command: system packages (where we may install them), lint,
# type checks, build, and every test. Prints one closing summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm run --silent lint
npm run --silent typecheck
npm run --silent build
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=$?
node scripts/test-summary.mjs test-results/vitest.json || status=1
exit "$status"
