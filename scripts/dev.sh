#!/usr/bin/env bash
# Runs license-edge on this machine with `spin up`.
#
# On first use it makes development secrets under .dev/ (a signing key, an admin token and
# the verified-token cache key; git-ignored), creates the database if it is missing and applies the migrations; then it
# starts Spin with the local runtime config (Spin's built-in key-value store) and the
# variables set from those files. Needs: Rust with the wasm32-wasip2 target, Spin 3.4 to 4.2
# (not 4.0.x, see README), PostgreSQL reachable at $DATABASE_URL, and psql.
#
# Without Spin installed it says so and serves the same components with the project's test
# host instead (a test fixture, not a runtime: use Spin for real work).
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/license_edge}"
LISTEN="${LISTEN:-127.0.0.1:3000}"
authority="${DATABASE_URL#*://}"; authority="${authority#*@}"; authority="${authority%%/*}"
case "$authority" in *:*) db_host="$authority" ;; *) db_host="$authority:5432" ;; esac
db_name="${DATABASE_URL##*/}"; db_name="${db_name%%\?*}"

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build -q -p licensectl
ctl=./target/debug/licensectl

mkdir -p .dev
chmod 700 .dev
[ -f .dev/signing.key ] || "$ctl" keygen --kid "dev-$(date +%Y%m%d)" --out .dev/signing.key >/dev/null
for secret in admin-token verify-cache-key; do
  if [ ! -f ".dev/$secret" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > ".dev/$secret")
  fi
done

if ! psql "$DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
  echo "creating database $db_name" >&2
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db_name\""
fi
"$ctl" migrate --database-url "$DATABASE_URL"

export SPIN_VARIABLE_DATABASE_URL="$DATABASE_URL"
export SPIN_VARIABLE_DB_HOST="$db_host"
export SPIN_VARIABLE_SIGNING_KEY="$(cat .dev/signing.key)"
export SPIN_VARIABLE_PUBLIC_KEYS="$("$ctl" jwks --text .dev/signing.key)"
export SPIN_VARIABLE_ADMIN_TOKEN="$(cat .dev/admin-token)"
export SPIN_VARIABLE_VERIFY_CACHE_KEY="$(cat .dev/verify-cache-key)"
echo "admin token: .dev/admin-token" >&2

if command -v spin >/dev/null; then
  exec spin up --build --listen "$LISTEN" --runtime-config-file runtime-config/local.toml "$@"
fi
echo "spin is not installed: serving with the project's test host instead (see README)" >&2
cargo build -q --release --target wasm32-wasip2 \
  -p component-health -p component-validate -p component-acquire -p component-admin
cargo build -q -p spin-test-host
exec ./target/debug/spin-test-host --listen "$LISTEN" --runtime-config-file runtime-config/local.toml "$@"
