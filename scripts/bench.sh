#!/usr/bin/env bash
# Runs a benchmark. Figures are printed as Markdown rows for BENCHMARKS.md; nothing asserts a
# timing.
#
# Usage: scripts/bench.sh hosts [seconds per row]
#          real Spin (`spin up`) and the test host side by side in one run, with wrk:
#          scripts/bench-spin.sh routes (see there; LE_BENCH_CONNECTIONS="1 16 64" for more rows).
#          Every performance claim is made on real Spin first.
#        scripts/bench.sh host_overhead|validate|seats|usage
#          the test host in-process, against throwaway PostgreSQL and Redis started exactly as
#          for the tests (tests/benches/).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  hosts) shift; exec ./scripts/bench-spin.sh routes "$@" ;;
  host_overhead | validate | seats | usage) [ "$#" -eq 1 ] || { echo "usage: scripts/bench.sh host_overhead|validate|seats|usage" >&2; exit 2; } ;;
  *) echo "usage: scripts/bench.sh hosts [seconds] | host_overhead | validate | seats | usage" >&2; exit 2 ;;
esac
LE_SKIP_LINT=1 LE_BENCH="$1" exec ./scripts/test.sh
