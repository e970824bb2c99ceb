#!/usr/bin/env bash
# Runs a benchmark against throwaway PostgreSQL and Redis, started exactly as for the tests.
#
# Usage: scripts/bench.sh host_overhead|validate|seats|usage
# Figures are printed as Markdown rows for BENCHMARKS.md; nothing asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -eq 1 ] || { echo "usage: scripts/bench.sh host_overhead|validate|seats|usage" >&2; exit 2; }
LE_SKIP_LINT=1 LE_BENCH="$1" exec ./scripts/test.sh
