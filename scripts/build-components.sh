#!/usr/bin/env bash
# Builds the four components (and, with --probe, the test-only probe component) for
# wasm32-wasip2, where spin.toml reads them: the hot-path components with the `release` profile
# (size first, `opt-level = "s"`), admin with the `small` profile (`opt-level = "z"`: it serves
# operators, not the hot path, and is the largest). See Cargo.toml's profiles.
#
# Usage: scripts/build-components.sh [--probe] [extra cargo arguments, e.g. -q]
set -euo pipefail
cd "$(dirname "$0")/.."
probe=()
if [ "${1:-}" = --probe ]; then probe=(-p component-probe); shift; fi
cargo build "$@" --release --target wasm32-wasip2 \
  -p component-health -p component-validate -p component-acquire "${probe[@]}"
cargo build "$@" --profile small --target wasm32-wasip2 -p component-admin
