#!/usr/bin/env bash
# Measures the app on a real Spin CLI (`spin up`), the way users run it, and on the project's
# test host (`spin-test-host`, optimised build) serving the same spin.toml, components, database
# and Redis, side by side in one run, with wrk over loopback. Prints Markdown for BENCHMARKS.md;
# nothing asserts a timing.
#
#   routes: health, validate (one valid token, the verified-token cache on) and acquire +
#           release cycles, on Spin then on the test host, at each connection count of
#           $LE_BENCH_CONNECTIONS (default "64"): a 3 s unmeasured warm-up, then the measured
#           row. Beside each row: test host / Spin, and on Spin the route / Spin's own health
#           and the route / the old Django service (the issue's fixed figures, measured on this
#           machine before: health 2,121 req/s, validate 1,080, acquire + release 148 cycles/s
#           at 64 connections; that service is not available here). The load average is printed
#           before and after each host's rows.
#   scale:  acquire + release cycles at 32 connections on ONE license that already holds N live
#           sessions (N = 1, 1,000, 10,000, 50,000), beside the same work spread over 32
#           licenses (one per connection), measured first and last. Spin only.
#   fleet:  the scale table again on a database that also holds 1,000,000 licenses,
#           10,000,000 ended sessions and 10,000,000 audit events (scripts/fleet.sql), then the
#           plan of every statement the hot functions run there (auto_explain, nested).
#
# Usage: scripts/bench-spin.sh [routes|scale|fleet] [seconds per row, default 12]
#        (scripts/bench.sh hosts runs `routes`)
# Needs: spin (../shared/tools/spin/install.sh on these machines), wrk (apt-get install wrk),
# psql, PostgreSQL and Redis reachable at $DATABASE_SERVER (default
# postgres://postgres@127.0.0.1:5432) and $REDIS_URL (default redis://127.0.0.1:6379). It makes a
# fresh database of its own there and drops it at the end; the Redis keys it writes are those of
# that database's licenses and sessions only. LE_BENCH_HOSTS="spin" (or "test-host") measures one
# host only; LE_BENCH_ROUTES (default "health validate cycle") picks the routes measured;
# LE_BENCH_SPIN_ARGS adds arguments to `spin up` (e.g. "--quiet": no component output);
# LE_BENCH_VERIFY_CACHE=off runs validate with the verified-token cache off (every validation
# checks the signature).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-routes}"
SECONDS_PER_ROW="${2:-12}"
CONNECTIONS="${LE_BENCH_CONNECTIONS:-64}"
HOSTS="${LE_BENCH_HOSTS:-spin test-host}"
ROUTES="${LE_BENCH_ROUTES:-health validate cycle}"
case "$MODE" in routes | scale | fleet) ;; *) echo "usage: scripts/bench-spin.sh [routes|scale|fleet] [seconds]" >&2; exit 2 ;; esac
DATABASE_SERVER="${DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
for tool in spin wrk psql; do
  command -v "$tool" >/dev/null || { echo "bench-spin: $tool is not installed" >&2; exit 2; }
done

db="le_bench_$$"
DATABASE_URL="$DATABASE_SERVER/$db?sslmode=disable"
authority="${DATABASE_SERVER#*://}"; authority="${authority#*@}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
work="$(mktemp -d /tmp/le-bench-spin.XXXXXX)"
spin_pid=""
host_pid=""
cleanup() {
  set +e
  [ -n "$spin_pid" ] && kill "$spin_pid" 2>/dev/null && wait "$spin_pid" 2>/dev/null
  [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
  psql "$DATABASE_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  [ "${LE_KEEP_LOG:-}" = 1 ] && tail -20 "$work/spin.log" "$work/test-host.log" >&2 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

./scripts/build-components.sh -q
cargo build -q -p licensectl
ctl=./target/debug/licensectl
if [ "$MODE" = routes ] && [[ " $HOSTS " == *" test-host "* ]]; then
  # The benchmarks' optimised profile (Cargo.toml: `bench`), as scripts/bench.sh measures it.
  cargo build -q --profile bench -p spin-test-host
fi
psql "$DATABASE_SERVER/postgres" -qc "CREATE DATABASE $db" >/dev/null
"$ctl" migrate --database-url "$DATABASE_URL" >/dev/null
"$ctl" keygen --kid bench --out "$work/signing.key" >/dev/null
admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$work/runtime.toml" <<EOF
[key_value_store.default]
type = "redis"
url = "$REDIS_URL"
EOF

export SPIN_VARIABLE_DATABASE_URL="$DATABASE_URL"
export SPIN_VARIABLE_DB_HOST="$authority"
export SPIN_VARIABLE_SIGNING_KEY="$(cat "$work/signing.key")"
export SPIN_VARIABLE_PUBLIC_KEYS="$("$ctl" jwks --text "$work/signing.key")"
export SPIN_VARIABLE_ADMIN_TOKEN="$admin_token"
export SPIN_VARIABLE_VERIFY_CACHE_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# A secret shorter than 32 bytes turns the verified-token cache off.
[ "${LE_BENCH_VERIFY_CACHE:-on}" = off ] && export SPIN_VARIABLE_VERIFY_CACHE_KEY=""
# shellcheck disable=SC2086 # LE_BENCH_SPIN_ARGS is a list of arguments
RUST_LOG=off spin up --listen "127.0.0.1:$port" --runtime-config-file "$work/runtime.toml" \
  ${LE_BENCH_SPIN_ARGS:-} >"$work/spin.log" 2>&1 &
spin_pid=$!
base="http://127.0.0.1:$port"
wait_for() { # base-url
  for _ in $(seq 150); do
    curl -fsS "$1/api/v1/health/" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "bench-spin: nothing answers at $1" >&2
  return 1
}
wait_for "$base"
declare -A url_of=([spin]="$base")
if [ "$MODE" = routes ] && [[ " $HOSTS " == *" test-host "* ]]; then
  host_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  ./target/release/spin-test-host --listen "127.0.0.1:$host_port" \
    --runtime-config-file "$work/runtime.toml" >"$work/test-host.log" 2>&1 &
  host_pid=$!
  url_of[test-host]="http://127.0.0.1:$host_port"
  wait_for "${url_of[test-host]}"
fi

export LICENSE_EDGE_ADMIN_TOKEN="$admin_token"
admin() { "$ctl" admin --url "$base" --json "$@"; }
org="$(admin org create --name Bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
prod="$(admin product create --org "$org" --code cad-pro --name CAD | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
lic="$(admin license create --product "$prod" --max-seats 1000000 --rate-limit-per-minute 1000000)"
key="$(printf '%s' "$lic" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license_key"])')"
token="$(curl -fsS -X POST "$base/api/v1/licenses/acquire/" -H "authorization: Bearer $key" \
  -H 'content-type: application/json' -d '{"machine_id":"bench-validate"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["license_token"])')"

cat > "$work/validate.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"$token"}'
done = function(summary, latency, requests)
  io.write(string.format("ROW %d %.1f %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("ERRORS %d\n", bad))
end
EOF
# A cycle: acquire a seat for a new machine, then release it. Per thread, released sessions wait
# in a queue; each request is the release of a waiting session, or else a new acquire, with the
# license keys of LE_KEYS ("license_id=key ...") taken in turn.
cat > "$work/cycle.lua" <<'EOF'
local queue, n, tid, keys, key_of = {}, 0, 0, {}, {}
for pair in string.gmatch(os.getenv("LE_KEYS"), "%S+") do
  local id, key = pair:match("([^=]+)=(.+)")
  table.insert(keys, key)
  key_of[id] = key
end
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  if #queue > 0 then
    local s = table.remove(queue)
    return wrk.format("DELETE", "/api/v1/licenses/sessions/" .. s.id .. "/",
      { ["Authorization"] = "Bearer " .. s.key }, "")
  end
  n = n + 1
  return wrk.format("POST", "/api/v1/licenses/acquire/",
    { ["Authorization"] = "Bearer " .. keys[(n % #keys) + 1], ["Content-Type"] = "application/json" },
    '{"machine_id":"bench-' .. tostring(tid) .. '-' .. n .. '"}')
end
response = function(status, headers, body)
  if status == 201 then
    local id = body:match('"session_id":"(ses_[0-9a-f]+)"')
    local lic = body:match('"license":{.-"id":"(lic_[^"]+)"')
    if id and lic then table.insert(queue, { id = id, key = key_of[lic] }) end
  end
end
done = function(summary, latency, requests)
  io.write(string.format("ROW %d %.1f %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("ERRORS %d\n", bad))
end
EOF
lic_id="$(printf '%s' "$lic" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
export LE_KEYS="$lic_id=$key"

run() { # script connections path
  wrk -t1 -c"$2" -d"${SECONDS_PER_ROW}s" --latency -s "$work/$1" "$base$3" 2>&1 | grep -E '^(ROW|ERRORS)'
}
row() { # label connections wrk-output: a Markdown row, cycles being half the requests
  read -r _ reqs rate p50 p99 <<<"$(grep ROW <<<"$3")"
  printf '| %s | %d | %s | %s | %s µs | %s µs | %s |\n' "$1" "$2" "$reqs" \
    "$(python3 -c "print(f'{$rate/2:,.0f}')")" "$p50" "$p99" "$(grep ERRORS <<<"$3" | cut -d' ' -f2)"
}

echo "spin $(spin --version | cut -d' ' -f2-), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ${SECONDS_PER_ROW}s a row, commit $(git rev-parse --short HEAD)"
echo
if [ "$MODE" = fleet ]; then
  started=$(date +%s)
  psql "$DATABASE_URL" -q -f scripts/fleet.sql >/dev/null
  echo "fleet rows made in $(( $(date +%s) - started )) s: $(psql "$DATABASE_URL" -tAc \
    "SELECT (SELECT count(*) FROM licenses) || ' licenses, ' || (SELECT count(*) FROM sessions) || ' sessions, ' || (SELECT count(*) FROM audit_events) || ' audit events, database ' || pg_size_pretty(pg_database_size(current_database()))")"
  echo
fi

if [ "$MODE" = scale ] || [ "$MODE" = fleet ]; then
  # 32 more licenses for the spread case, one per connection.
  spread=""
  for _ in $(seq 32); do
    l="$(admin license create --product "$prod" --max-seats 10 --rate-limit-per-minute 1000000)"
    spread="$spread $(printf '%s' "$l" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["id"] + "=" + v["license_key"])')"
  done
  big="$LE_KEYS"
  echo "| case | connections | requests | cycles/s | p50 request | p99 request | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  row "spread: 32 licenses, one session each" 32 "$(LE_KEYS="$spread" run cycle.lua 32 /)"
  live=0
  for n in 1 1000 10000 50000; do
    # Top the license up to n live sessions, counted as if n machines had acquired.
    psql "$DATABASE_URL" -qc "
      INSERT INTO sessions (id, license_id, machine_hash, metadata, started_at, last_heartbeat_at,
                            expires_at, seat_until, counted)
      SELECT 'ses_' || md5('$lic_id' || g::text), '$lic_id', md5(g::text), '{}', le_now_ms(), le_now_ms(),
             le_now_ms() + 3600000, le_now_ms() + 3600000 + le_seat_hold_ms(), TRUE
      FROM generate_series($live + 1, $n) g;
      INSERT INTO license_seat_counts (license_id, counted)
      SELECT '$lic_id', count(*) FROM sessions WHERE license_id = '$lic_id' AND counted
      ON CONFLICT (license_id) DO UPDATE SET counted = EXCLUDED.counted;
      ANALYZE sessions;" >/dev/null
    live=$n
    row "one license, $n live sessions" 32 "$(LE_KEYS="$big" run cycle.lua 32 /)"
  done
  row "spread again" 32 "$(LE_KEYS="$spread" run cycle.lua 32 /)"
  if [ "$MODE" = fleet ]; then
    # Every statement the hot functions run, with its plan and actual rows (auto_explain sends
    # them to this client at LOG level), on a fleet license and on the large one.
    sid="$(psql "$DATABASE_URL" -tAc "SELECT id FROM sessions WHERE license_id = '$lic_id' AND counted LIMIT 1")"
    echo
    echo '```'
    psql "$DATABASE_URL" -q 2>&1 >/dev/null <<EOF | grep -E 'Query Text|Scan|Index Cond|duration' | sed -e 's/^psql:<stdin>:[0-9]*: //' -e 's/^LOG:  //'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET client_min_messages = log;
SELECT * FROM le_acquire_attempt(md5('key500000') || md5('hash500000'));
SELECT * FROM le_acquire_seat('lic_fleet500000', md5('explain'), 'ses_explain0000000000000000000000000', NULL, '{}');
SELECT * FROM le_extend(md5('key500000') || md5('hash500000'), 'ses_explain0000000000000000000000000', NULL, NULL);
SELECT * FROM le_release(md5('key500000') || md5('hash500000'), 'ses_explain0000000000000000000000000', 'client', NULL);
SELECT * FROM le_acquire_seat('$lic_id', md5('explain'), 'ses_explain1111111111111111111111111', NULL, '{}');
SELECT * FROM le_admin_license('lic_fleet500000', 0, 10);
SELECT * FROM le_admin_licenses('org_fleet', NULL, NULL, NULL, NULL, 50);
SELECT * FROM le_admin_sessions('lic_fleet500000', 'all', NULL, NULL, 50, 0);
SELECT * FROM le_admin_audit('license', 'lic_fleet500000', NULL, 50);
SELECT * FROM le_admin_audit('organization', 'org_fleet', NULL, 50);
SELECT * FROM le_admin_kv_sweep_batch(500);
EOF
    echo '```'
  fi
  exit 0
fi

cat > "$work/health.lua" <<'EOF'
done = function(summary, latency, requests)
  io.write(string.format("ROW %d %.1f %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("ERRORS %d\n", bad))
end
EOF

# CPU time (user + system, clock ticks) of a host's processes, its children included (`spin up`
# runs its trigger as a child process), and of Redis and PostgreSQL.
ticks() { # pid...
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
  done
  echo "$total"
}
host_pids() { # host
  local pid="$spin_pid"
  [ "$1" = test-host ] && pid="$host_pid"
  echo "$pid $(pgrep -P "$pid" | tr '\n' ' ')"
}
store_pids() { echo "$(pgrep -x redis-server | tr '\n' ' ') $(pgrep -x postgres | tr '\n' ' ')"; }
# One measured row: a 3 s warm-up on the same route, then the row. Prints "rate p50 p99 errors
# host-cpu stores-cpu" (rate in requests per second; latencies in microseconds; CPU in
# microseconds per request: the host's processes, and Redis and PostgreSQL together). CPU per
# request is steadier than the rate on a shared machine: it does not count time spent waiting.
measure() { # host script connections path
  wrk -t1 -c"$3" -d3s -s "$work/$2" "${url_of[$1]}$4" >/dev/null 2>&1 || true
  local out rate p50 p99 h0 s0 h1 s1 requests hz
  # shellcheck disable=SC2046 # pid lists
  h0="$(ticks $(host_pids "$1"))"; s0="$(ticks $(store_pids))"
  out="$(wrk -t1 -c"$3" -d"${SECONDS_PER_ROW}s" --latency -s "$work/$2" "${url_of[$1]}$4" 2>&1 | grep -E '^(ROW|ERRORS)')"
  # shellcheck disable=SC2046
  h1="$(ticks $(host_pids "$1"))"; s1="$(ticks $(store_pids))"
  read -r _ requests rate p50 p99 <<<"$(grep ROW <<<"$out")"
  hz="$(getconf CLK_TCK)"
  echo "$rate $p50 $p99 $(grep ERRORS <<<"$out" | cut -d' ' -f2) $(( (h1 - h0) * 1000000 / hz / requests )) $(( (s1 - s0) * 1000000 / hz / requests ))"
}
load() { cut -d' ' -f1 /proc/loadavg; }
ms() { python3 -c "print(f'{$1/1000:.1f}')"; }

echo "Component sizes (bytes): $(for c in health validate acquire admin; do
  profile=release; [ "$c" = admin ] && profile=small
  printf '%s %s, ' "$c" "$(stat -c %s "target/wasm32-wasip2/$profile/component_$c.wasm")"; done | sed 's/, $//')"
echo
declare -A rate p50 p99 errors cpu
declare -A old_rate=([health]=2121 [validate]=1080 [cycle]=148)
for host in $HOSTS; do
  if [ "$host" = test-host ] && [ -n "$spin_pid" ]; then
    # Spin keeps its pooled PostgreSQL connections (up to 64) open while idle; with the test
    # host's own 64 they would pass PostgreSQL's default max_connections (100). Spin's rows are
    # done: stop it first.
    kill "$spin_pid" 2>/dev/null || true
    wait "$spin_pid" 2>/dev/null || true
    spin_pid=""
  fi
  for c in $CONNECTIONS; do
    before="$(load)"
    for what in $ROUTES; do
      case "$what" in
        health) path=/api/v1/health/ ;;
        validate) path=/api/v1/licenses/validate/ ;;
        cycle) path=/ ;;
      esac
      read -r r a b e hc sc <<<"$(measure "$host" "$what.lua" "$c" "$path")"
      # A cycle is two requests: its rate is half the requests', its CPU twice a request's.
      if [ "$what" = cycle ]; then r="$(python3 -c "print($r/2)")"; hc=$((hc * 2)); sc=$((sc * 2)); fi
      rate[$host.$what.$c]="$r"; p50[$host.$what.$c]="$a"; p99[$host.$what.$c]="$b"; errors[$host.$what.$c]="$e"
      cpu[$host.$what.$c]="$hc / $sc"
    done
    echo "load average (1 min) on $host at $c connections: $before before, $(load) after"
  done
done
cell() { # key
  if [ -n "${rate[$1]:-}" ]; then python3 -c "print(f'{${rate[$1]}:,.0f}')"; else echo "-"; fi
}
lat() { if [ -n "${p50[$1]:-}" ]; then echo "$(ms "${p50[$1]}") / $(ms "${p99[$1]}") ms"; else echo "-"; fi; }
ratio() { # numerator-key denominator-key
  if [ -n "${rate[$1]:-}" ] && [ -n "${rate[$2]:-}" ]; then python3 -c "print(f'{${rate[$1]}/${rate[$2]}:.2f}x')"; else echo "-"; fi
}
echo
echo "| route | connections | Spin: per second | Spin: p50 / p99 | test host: per second | test host: p50 / p99 | test host / Spin | Spin: route / Spin's health | Spin / old service | CPU µs per request (cycle), host / Redis + PostgreSQL: Spin; test host | errors (Spin, test host) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CONNECTIONS; do
  for what in $ROUTES; do
    label="$what"; [ "$what" = cycle ] && label="acquire+release (cycles; latency per request)"
    s="spin.$what.$c"; t="test-host.$what.$c"
    vs_old="-"
    if [ -n "${rate[$s]:-}" ] && [ "$c" = 64 ]; then
      vs_old="$(python3 -c "print(f'{${rate[$s]}/${old_rate[$what]}:.2f}x')")"
    fi
    echo "| $label | $c | $(cell "$s") | $(lat "$s") | $(cell "$t") | $(lat "$t") | $(ratio "$t" "$s") | $(ratio "$s" "spin.health.$c") | $vs_old | ${cpu[$s]:--}; ${cpu[$t]:--} | ${errors[$s]:--}, ${errors[$t]:--} |"
  done
done

# LE_BENCH_PERF=1 (with LE_BENCH_HOSTS=spin: Spin is stopped before the test host's rows): where
# Spin's CPU goes under validate load (64 connections, 8 s, not one of the
# rows above), by shared object and then by symbol, with `perf` (Debian's linux-perf). Spin's
# release binary is stripped, so its own code shows as one object; the components' compiled
# code is anonymous executable memory.
if [ "${LE_BENCH_PERF:-}" = 1 ] && [ -n "$spin_pid" ] && command -v perf >/dev/null; then
  worker="$(pgrep -P "$spin_pid" | head -1)"
  wrk -t1 -c64 -d12s -s "$work/validate.lua" "${url_of[spin]}/api/v1/licenses/validate/" >/dev/null 2>&1 &
  wrk_pid=$!
  sleep 2
  perf record -q -F 999 -g -p "$spin_pid${worker:+,$worker}" -o "$work/perf.data" -- sleep 8 >/dev/null 2>&1 || true
  wait "$wrk_pid" || true
  echo
  echo "Spin under validate load, CPU by object (perf, 8 s, 64 connections):"
  echo '```'
  perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12
  echo '```'
  echo "and by symbol (top 25):"
  echo '```'
  perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25 | cut -c1-140
  echo '```'
fi
