#!/usr/bin/env bash
# Runs license-edge on this machine: `spin up --build` when Spin is installed, else the same
# components in the project's test host (a test fixture, not a runtime: use Spin for real work).
# Needs only Rust (rustup); Ctrl-C stops everything it started.
#
#   ./scripts/dev.sh [--reset] [ARGS...]     ARGS go to `spin up` (or the test host)
#
# What it sets up, all under .dev/ (git-ignored; LE_DEV_DIR names another folder):
# - development secrets: a signing key, the admin token, the verified-token cache key;
# - the database. DATABASE_URL, when set, is used as it is (the database is created if missing).
#   Otherwise a PostgreSQL that answers at the default address (user postgres at
#   127.0.0.1:LE_DEV_PG_PORT, default 5432) is used; and when none does, a private cluster in
#   .dev/pg bound to 127.0.0.1, with PostgreSQL installed from Debian's packages if missing
#   (sudo only when not root; Debian's package may start a server of its own on 5432, which
#   asks for a password). The cluster listens on the default port, or on another one when that
#   port is taken, says which, keeps its data between runs and is stopped when the app stops.
#   Migrations are applied either way;
# - the key-value store: Spin's built-in one (a SQLite file in .dev/; the test host keeps it in
#   memory), so nothing else needs to run.
# --reset starts over: a clean database, new development keys, an empty key-value store.
#
# The app listens on LISTEN (default 127.0.0.1:3000). Build output goes to CARGO_TARGET_DIR
# (default target/); spin.toml finds the components under target/, so another target folder is
# linked there when target/ does not exist yet.
set -euo pipefail
cd "$(dirname "$0")/.."

reset=0
if [ "${1:-}" = --reset ]; then reset=1; shift; fi
DEV_DIR="${LE_DEV_DIR:-.dev}"
LISTEN="${LISTEN:-127.0.0.1:3000}"
DEFAULT_PG_PORT="${LE_DEV_PG_PORT:-5432}"

say() { printf 'dev.sh: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# PostgreSQL refuses to run as root: as root, its tools run as the postgres user.
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # the first closed port from 54320 up
  local p
  for p in $(seq 54320 54999); do port_open "$p" || { echo "$p"; return; }; done
  return 1
}

# --- Build output --------------------------------------------------------------------------
tdir="${CARGO_TARGET_DIR:-target}"
if [ "$tdir" != target ] && [ "$(realpath -m "$tdir")" != "$(realpath -m target)" ]; then
  if [ ! -e target ]; then
    ln -s "$(realpath -m "$tdir")" target
  elif [ "$(realpath target)" != "$(realpath -m "$tdir")" ]; then
    say "CARGO_TARGET_DIR is $tdir but target/ is another folder; spin.toml reads the components from target/"
    exit 2
  fi
fi
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build -q -p licensectl
ctl="$tdir/debug/licensectl"

# --- Secrets and state -----------------------------------------------------------------------
mkdir -p "$DEV_DIR"
# Owner only; as root the postgres user must still reach $DEV_DIR/pg (search, not list: the
# secrets themselves are mode 0600).
if [ "$(id -u)" = 0 ]; then chmod 711 "$DEV_DIR"; else chmod 700 "$DEV_DIR"; fi
if [ "$reset" = 1 ]; then
  say "--reset: new development keys and an empty key-value store"
  rm -f "$DEV_DIR/signing.key" "$DEV_DIR/admin-token" "$DEV_DIR/verify-cache-key" "$DEV_DIR"/kv.sqlite*
fi
[ -f "$DEV_DIR/signing.key" ] || "$ctl" keygen --kid "dev-$(date +%Y%m%d)" --out "$DEV_DIR/signing.key" >/dev/null
for secret in admin-token verify-cache-key; do
  if [ ! -f "$DEV_DIR/$secret" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEV_DIR/$secret")
  fi
done
dev_abs="$(realpath "$DEV_DIR")"
cat > "$DEV_DIR/runtime-config.toml" <<EOF
# Written by scripts/dev.sh: Spin's built-in key-value store, kept in this folder.
[key_value_store.default]
type = "spin"
path = "$dev_abs/kv.sqlite"
EOF

# --- The database --------------------------------------------------------------------------
PG_DIR="$DEV_DIR/pg"
pg_started=""   # set when this run started the private cluster, which it then stops
app_pid=""
cleanup() {
  trap - EXIT INT TERM
  set +e
  if [ -n "$app_pid" ]; then
    kill -TERM -- "-$app_pid" 2>/dev/null || kill -TERM "$app_pid" 2>/dev/null
    wait "$app_pid" 2>/dev/null
  fi
  if [ -n "$pg_started" ]; then
    run_pg "$PG_BIN/pg_ctl" -D "$pg_started" -m fast -w stop >/dev/null 2>&1 \
      && say "stopped the private PostgreSQL"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Does a PostgreSQL let user postgres in at URL? (licensectl connects; `timeout` covers a
# listener that never speaks PostgreSQL.)
pg_answers() { timeout 5 "$ctl" migrate --status --database-url "$1" >/dev/null 2>&1; }

db_note=""
create=(--create-database)
[ "$reset" = 1 ] && create=(--recreate-database)
if [ -n "${DATABASE_URL:-}" ]; then
  db_note="yours (DATABASE_URL)"
  [ "$reset" = 1 ] && say "--reset: dropping and re-creating the database of DATABASE_URL"
elif [ ! -f "$PG_DIR/data/PG_VERSION" ] \
     && pg_answers "postgres://postgres@127.0.0.1:$DEFAULT_PG_PORT/postgres"; then
  # A server at the default address: used, as earlier versions of this script did.
  DATABASE_URL="postgres://postgres@127.0.0.1:$DEFAULT_PG_PORT/license_edge"
  db_note="the PostgreSQL that was already at 127.0.0.1:$DEFAULT_PG_PORT"
  [ "$reset" = 1 ] && say "--reset: dropping and re-creating database license_edge there"
else
  # The private cluster.
  if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
    say "installing PostgreSQL from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  PG_BIN="$(pg_bin)"
  data="$(realpath -m "$PG_DIR/data")"
  if [ "$reset" = 1 ] && [ -d "$PG_DIR" ]; then
    say "--reset: deleting the private cluster"
    run_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    say "creating a private PostgreSQL cluster in $PG_DIR"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
    run_pg "$PG_BIN/initdb" -A trust -U postgres -D "$data" >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  fi
  port="$(cat "$PG_DIR/port" 2>/dev/null || echo "$DEFAULT_PG_PORT")"
  if run_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    db_note="the private cluster in $PG_DIR (it was already running: left running)"
  else
    if port_open "$port"; then
      wanted="$port"; port="$(free_port)"
      say "port $wanted is taken by something else (nothing there lets user postgres in): the private PostgreSQL listens on $port"
    fi
    echo "$port" > "$PG_DIR/port"
    # TCP on 127.0.0.1 only, no Unix socket (a deep checkout's socket path can be too long).
    run_pg "$PG_BIN/pg_ctl" -D "$data" -l "$(realpath -m "$PG_DIR/log")" -w start \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" >/dev/null \
      || { tail -n 20 "$PG_DIR/log" >&2; exit 1; }
    pg_started="$data"
    db_note="the private cluster in $PG_DIR (stopped with the app)"
  fi
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/license_edge"
fi
"$ctl" migrate "${create[@]}" --database-url "$DATABASE_URL" >/dev/null

authority="${DATABASE_URL#*://}"; authority="${authority#*@}"; authority="${authority%%/*}"
case "$authority" in *:*) db_host="$authority" ;; *) db_host="$authority:5432" ;; esac
export SPIN_VARIABLE_DATABASE_URL="$DATABASE_URL"
export SPIN_VARIABLE_DB_HOST="$db_host"
export SPIN_VARIABLE_SIGNING_KEY="$(cat "$DEV_DIR/signing.key")"
export SPIN_VARIABLE_PUBLIC_KEYS="$("$ctl" jwks --text "$DEV_DIR/signing.key")"
export SPIN_VARIABLE_ADMIN_TOKEN="$(cat "$DEV_DIR/admin-token")"
export SPIN_VARIABLE_VERIFY_CACHE_KEY="$(cat "$DEV_DIR/verify-cache-key")"

# --- The app -------------------------------------------------------------------------------
if command -v spin >/dev/null; then
  runner="spin up --build ($(spin --version 2>/dev/null | cut -d' ' -f2))"
  cmd=(spin up --build --listen "$LISTEN" --runtime-config-file "$DEV_DIR/runtime-config.toml" "$@")
else
  runner="the project's test host: spin is not installed (see README)"
  ./scripts/build-components.sh -q
  cargo build -q -p spin-test-host
  cmd=("$tdir/debug/spin-test-host" --listen "$LISTEN" --runtime-config-file "$DEV_DIR/runtime-config.toml" "$@")
fi
redacted="$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$DATABASE_URL")"
cat >&2 <<EOF

license-edge on http://$LISTEN, served by $runner
  database   $redacted: $db_note
  key-value  Spin's built-in store ($DEV_DIR/kv.sqlite with Spin; in memory in the test host)
  admin      token in $DEV_DIR/admin-token; a first license: LICENSE_EDGE_ADMIN_TOKEN="\$(cat $DEV_DIR/admin-token)" cargo run -q -p licensectl -- admin --url http://$LISTEN quickstart
  stop       Ctrl-C (stops the app$([ -n "$pg_started" ] && echo " and the private PostgreSQL"))

EOF
# Its own process group, so that stopping it stops what it started (spin's build, its trigger).
setsid "${cmd[@]}" &
app_pid=$!
status=0
wait "$app_pid" || status=$?
app_pid=""
exit "$status"
