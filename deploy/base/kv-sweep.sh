#!/bin/sh
# Sweeps the edge read model: calls the app's POST /api/v1/admin/kv/sweep until it answers
# "more": false, at most LE_SWEEP_MAX_CALLS times, so that a run always ends (the next run goes
# on from where the app recorded this one stopped). Each call deletes the sess:{id} and vt:{id}
# entries of at most 4,000 sessions whose tokens can no longer validate; nothing else deletes
# them, since Spin's key-value API sets no TTLs.
#
# Runs in the license-edge-kv-sweep CronJob (curlimages/curl: busybox sh and curl) and on any
# machine with curl, e.g. through `kubectl port-forward svc/license-edge 8080:80`:
#   LE_APP_URL=http://127.0.0.1:8080 ADMIN_TOKEN="$(cat admin-token)" sh deploy/base/kv-sweep.sh
#
#   ADMIN_TOKEN            the admin bearer token (Secret license-edge-admin-token, key
#                          admin_token); surrounding whitespace is ignored, as the app ignores it
#   LE_APP_URL             the app's base URL (default http://license-edge, the Service the
#                          SpinApp's operator creates, port 80)
#   LE_SWEEP_MAX_CALLS     calls per run at most (default 500)
#   LE_SWEEP_CALL_TIMEOUT  seconds one call may take (default 120): on real Spin a key-value call
#                          hangs while Redis is down, so a call must time out rather than wait
#
# Exit status: 0 when the sweep is done or the run's calls are spent; 1 for what a later try may
# cure (503 while Redis or PostgreSQL is unavailable, any other 5xx, no connection, a timeout);
# 2 for what retrying will not cure (no token, 401, 404, any other answer). The CronJob's
# podFailurePolicy fails the Job at once on 2 and lets the Job retry on 1.
set -eu

base="${LE_APP_URL:-http://license-edge}"
url="${base%/}/api/v1/admin/kv/sweep"
max_calls="${LE_SWEEP_MAX_CALLS:-500}"
call_timeout="${LE_SWEEP_CALL_TIMEOUT:-120}"

fail() {
  status=$1
  shift
  echo "kv-sweep: error: $*" >&2
  exit "$status"
}

case "$max_calls" in '' | *[!0-9]* | 0) fail 2 "LE_SWEEP_MAX_CALLS must be a whole number above 0" ;; esac
case "$call_timeout" in '' | *[!0-9]* | 0) fail 2 "LE_SWEEP_CALL_TIMEOUT must be a whole number of seconds above 0" ;; esac

# printf is a shell builtin and tr reads the token on standard input: the token never appears in
# a process's arguments (ps, /proc/*/cmdline), here or in the curl call below.
token="$(printf '%s' "${ADMIN_TOKEN:-}" | tr -d ' \t\r\n')"
[ -n "$token" ] || fail 2 "ADMIN_TOKEN is empty"

# One call: the Authorization header goes to curl on standard input (-H @-). --json '' makes it
# a POST with an empty body (Content-Length: 0). -q: no ~/.curlrc. The HTTP status is printed on
# a line of its own after the body.
sweep_once() {
  printf 'Authorization: Bearer %s\n' "$token" |
    curl -q -sS --json '' -H @- --connect-timeout 10 --max-time "$call_timeout" \
      -w '\n%{http_code}' "$url"
}

nl='
'
calls=0
swept=0
while [ "$calls" -lt "$max_calls" ]; do
  calls=$((calls + 1))
  if answer="$(sweep_once)"; then
    :
  else
    fail 1 "call $calls: no answer from $url (curl exit status $?); a later try may succeed"
  fi
  status="${answer##*"$nl"}"
  body="${answer%"$nl"*}"
  case "$status" in
    200) ;;
    503) fail 1 "call $calls: 503, the app's key-value store or database is unavailable; a later try will go on: $body" ;;
    5??) fail 1 "call $calls: $status: $body" ;;
    *) fail 2 "call $calls: $status (a 401 means ADMIN_TOKEN is not the app's admin token): $body" ;;
  esac
  compact="$(printf '%s' "$body" | tr -d ' \t\r\n')"
  case "$compact" in
    *'"more":true'*) more=true ;;
    *'"more":false'*) more=false ;;
    *) fail 2 "call $calls: 200 without a \"more\" field; is this the license-edge app? $body" ;;
  esac
  n="$(printf '%s' "$compact" | sed -n 's/.*"sessions_swept":\([0-9][0-9]*\).*/\1/p')"
  swept=$((swept + ${n:-0}))
  echo "kv-sweep: call $calls: $body"
  if [ "$more" = false ]; then
    echo "kv-sweep: done: $swept session(s) swept in $calls call(s)"
    exit 0
  fi
done
echo "kv-sweep: stopped after $calls calls with sessions still waiting ($swept swept); the next run goes on from here"
