#!/bin/sh
# Applies the numbered SQL files of one folder to PostgreSQL, in order, each once.
# Runs in the migration Job (stock postgres:*-alpine image: busybox sh and psql) and on any
# machine with psql, e.g. `MIGRATIONS_DIR=migrations sh deploy/base/migrate/run-migrations.sh`.
#
# Connection: libpq's environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE),
# as the role that owns the schema.
#   MIGRATIONS_DIR   the folder (default /migrations); names not ending in .sql are ignored
#   LE_APP_ROLE      optional: the app's login role, granted SELECT, INSERT, UPDATE, DELETE on
#                    every table of schema public (and USAGE, SELECT on its sequences) after the
#                    files are applied, and nothing on schema_migrations
#   LE_LOCK_TIMEOUT  how long a statement may wait for a table lock before it fails (default
#                    15s), so a migration never stalls live traffic queued behind it
#
# The convention is the one `licensectl migrate` (crates/migrate) follows, so either may run
# first (deploy/README.md, "Migrations"): files are named NNNN_name.sql, numbered from 0001
# without duplicates; each file is idempotent, wraps itself in BEGIN ... COMMIT and records
# itself with INSERT INTO schema_migrations (version, applied_at) ... ON CONFLICT DO NOTHING;
# a recorded version is skipped. Everything runs in one psql session holding the same advisory
# lock as `licensectl migrate`, so concurrent runners apply each file once.
set -eu

dir="${MIGRATIONS_DIR:-/migrations}"
# crates/migrate's LOCK_KEY (0x6c656d6967726174, "lemigrat").
lock_key=7810769428218536308
lock_timeout="${LE_LOCK_TIMEOUT:-15s}"

die() {
  echo "run-migrations: error: $*" >&2
  exit 1
}

[ -d "$dir" ] || die "no folder $dir"
if [ -n "${LE_APP_ROLE:-}" ]; then
  echo "$LE_APP_ROLE" | grep -Eq '^[a-z_][a-z0-9_]*$' || die "LE_APP_ROLE is not a plain role name"
fi

# The files, in order. A ConfigMap mount also holds ..data links, which `ls` does not list.
files=$(LC_ALL=C ls "$dir" | grep '\.sql$' || true)
seen=""
for name in $files; do
  echo "$name" | grep -Eq '^[0-9]{4}_[a-z0-9_]+\.sql$' ||
    die "$name: migration files are named NNNN_name.sql (four digits, then a-z, 0-9 and _)"
  number=${name%%_*}
  case " $seen " in
    *" $number "*) die "two migration files are numbered $number" ;;
  esac
  seen="$seen $number"
done

# One psql script for the whole run. Versions are [0-9a-z_] only (checked above), so they are
# safe inside the SQL text; the folder goes in as a psql variable.
script() {
  cat <<SQL
SELECT pg_advisory_lock($lock_key) AS locked \gset
SET lock_timeout = :'lock_timeout';
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL);
SQL
  for name in $files; do
    version=${name%.sql}
    cat <<SQL
SELECT count(*) > 0 AS done FROM schema_migrations WHERE version = '$version' \gset
\if :done
\echo run-migrations: $version already applied
\else
\echo run-migrations: applying $version
\set file :dir '/$name'
\i :file
SELECT count(*) = 0 AS unrecorded FROM schema_migrations WHERE version = '$version' \gset
\if :unrecorded
\warn run-migrations: warning: $version did not record itself in schema_migrations; it will run again next time
\endif
\endif
SQL
  done
  if [ -n "${LE_APP_ROLE:-}" ]; then
    cat <<'SQL'
BEGIN;
GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE ALL ON TABLE schema_migrations FROM :"app_role";
COMMIT;
\echo run-migrations: granted :app_role SELECT, INSERT, UPDATE, DELETE on the tables of schema public
SQL
  fi
  printf '%s\n' '\echo run-migrations: done'
}

# ON_ERROR_STOP: the first failing statement ends the run with a non-zero status; the failed
# file's open transaction is rolled back when the session ends, and the advisory lock with it.
script | psql -X -q -v ON_ERROR_STOP=1 -v dir="$dir" -v lock_timeout="$lock_timeout" \
  -v app_role="${LE_APP_ROLE:-}" -f - ||
  die "a migration failed (see the psql error above); files before it stay applied; a failed file that wraps itself in BEGIN ... COMMIT, as the convention asks, left nothing behind"
