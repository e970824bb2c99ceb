#!/bin/sh
# Calls one of the app's batched admin routes until it answers "more": false, at most
# LE_ADMIN_MAX_CALLS times, so that a run always ends; the next run goes on from there. Two
# CronJobs run it (deploy/base/admin-cronjob-common.yaml holds what they share):
#
#   license-edge-kv-sweep  hourly, POST /api/v1/admin/kv/sweep with an empty body: each call
#                          deletes the sess:{id} and vt:{id} entries of at most 4,000 sessions
#                          whose tokens can no longer validate; nothing else deletes them, since
#                          Spin's key-value API sets no TTLs (deploy/README.md, section 12).
#   license-edge-prune     daily, POST /api/v1/admin/prune with the retention of the overlay's
#                          config.env: each call deletes at most 10,000 old sessions and 10,000
#                          old audit events from PostgreSQL (deploy/README.md, section 13).
#
# Also runs on any machine with curl, e.g. through
# `kubectl port-forward svc/license-edge-admin 8080:80`:
#   LE_APP_URL=http://127.0.0.1:8080 LE_ADMIN_PATH=/api/v1/admin/kv/sweep \
#     ADMIN_TOKEN="$(cat admin-token)" sh deploy/base/admin-batch.sh
#
#   ADMIN_TOKEN            the admin bearer token (Secret license-edge-admin-token, key
#                          admin_token); surrounding whitespace is ignored, as the app ignores it
#   LE_ADMIN_PATH          the route, under /api/v1/admin/ (required)
#   LE_ADMIN_BODY          the JSON object POSTed on every call (default: none, an empty body)
#   LE_APP_URL             the admin API's base URL (default http://license-edge-admin, the
#                          Service the operator creates for SpinApp license-edge-admin, port 80;
#                          the public Service license-edge serves no admin route)
#   LE_ADMIN_MAX_CALLS     calls per run at most (default 500)
#   LE_ADMIN_CALL_TIMEOUT  seconds one call may take (default 120): on real Spin a key-value call
#                          hangs while Redis is down, so a call must time out rather than wait
#
# Every answer must be 200 with a "more" field; the script adds up the answers' whole-number
# fields (sessions_swept, sessions_deleted, ...) and logs the totals.
#
# Exit status: 0 when the route says it is done or the run's calls are spent; 1 for what a later
# try may cure (503 while Redis or PostgreSQL is unavailable, any other 5xx, no connection, a
# timeout); 2 for what retrying will not cure (a bad setting, no token, 400, 401, 404, any other
# answer). The CronJobs' podFailurePolicy fails the Job at once on 2 and lets it retry on 1.
set -eu

base="${LE_APP_URL:-http://license-edge-admin}"
path="${LE_ADMIN_PATH:-}"
body="${LE_ADMIN_BODY:-}"
max_calls="${LE_ADMIN_MAX_CALLS:-500}"
call_timeout="${LE_ADMIN_CALL_TIMEOUT:-120}"
# The name the log lines start with: kv-sweep, prune.
name="$(printf '%s' "${path#/api/v1/admin/}" | tr / -)"

fail() {
  status=$1
  shift
  echo "${name:-admin-batch}: error: $*" >&2
  exit "$status"
}

case "$path" in
  /api/v1/admin/?*) ;;
  *) fail 2 "LE_ADMIN_PATH must name a route under /api/v1/admin/, e.g. /api/v1/admin/kv/sweep" ;;
esac
case "$path" in *[!A-Za-z0-9/_.-]*) fail 2 "LE_ADMIN_PATH holds a character a route does not: $path" ;; esac
case "$body" in
  *'$('*) fail 2 "LE_ADMIN_BODY holds a \$(...) reference Kubernetes did not expand: $body" ;;
  '' | '{'*'}') ;;
  *) fail 2 "LE_ADMIN_BODY must be a JSON object or empty: $body" ;;
esac
case "$max_calls" in '' | *[!0-9]* | 0) fail 2 "LE_ADMIN_MAX_CALLS must be a whole number above 0" ;; esac
case "$call_timeout" in '' | *[!0-9]* | 0) fail 2 "LE_ADMIN_CALL_TIMEOUT must be a whole number of seconds above 0" ;; esac
url="${base%/}$path"

# printf is a shell builtin and tr reads the token on standard input: the token never appears in
# a process's arguments (ps, /proc/*/cmdline), here or in the curl call below.
token="$(printf '%s' "${ADMIN_TOKEN:-}" | tr -d ' \t\r\n')"
[ -n "$token" ] || fail 2 "ADMIN_TOKEN is empty"

# One call: the Authorization header goes to curl on standard input (-H @-). --json makes it a
# POST of the body with content-type application/json (with '', an empty body, Content-Length: 0);
# the body is no secret. -q: no ~/.curlrc. The HTTP status is printed on a line of its own after
# the answer.
call_once() {
  printf 'Authorization: Bearer %s\n' "$token" |
    curl -q -sS --json "$body" -H @- --connect-timeout 10 --max-time "$call_timeout" \
      -w '\n%{http_code}' "$url"
}

# Adds the whole-number fields of a compact answer to $totals ("name=N name=N ...", in the
# order first seen).
totals=""
add_totals() {
  pairs="$(printf '%s' "$1" | tr ',{}' '\n\n\n' | sed -n \
    -e 's/^"\([a-z][a-z0-9_]*\)":\([1-9][0-9]\{0,14\}\)$/\1=\2/p' \
    -e 's/^"\([a-z][a-z0-9_]*\)":0$/\1=0/p')"
  for pair in $pairs; do
    field="${pair%%=*}"
    found=false
    rebuilt=""
    for total in $totals; do
      if [ "${total%%=*}" = "$field" ]; then
        total="$field=$((${total#*=} + ${pair#*=}))"
        found=true
      fi
      rebuilt="$rebuilt $total"
    done
    [ "$found" = true ] || rebuilt="$rebuilt $pair"
    totals="${rebuilt# }"
  done
}

echo "$name: POST $url${body:+ with $body}"
nl='
'
calls=0
while [ "$calls" -lt "$max_calls" ]; do
  calls=$((calls + 1))
  if answer="$(call_once)"; then
    :
  else
    fail 1 "call $calls: no answer from $url (curl exit status $?); a later try may succeed"
  fi
  status="${answer##*"$nl"}"
  reply="${answer%"$nl"*}"
  case "$status" in
    200) ;;
    503) fail 1 "call $calls: 503, the app's database or key-value store is unavailable; a later try will go on: $reply" ;;
    5??) fail 1 "call $calls: $status: $reply" ;;
    *) fail 2 "call $calls: $status (a 401 means ADMIN_TOKEN is not the app's admin token; a 400, a body the route refuses): $reply" ;;
  esac
  compact="$(printf '%s' "$reply" | tr -d ' \t\r\n')"
  case "$compact" in
    *'"more":true'*) more=true ;;
    *'"more":false'*) more=false ;;
    *) fail 2 "call $calls: 200 without a \"more\" field; is this the license-edge app? $reply" ;;
  esac
  add_totals "$compact"
  echo "$name: call $calls: $reply"
  if [ "$more" = false ]; then
    echo "$name: done in $calls call(s): ${totals:-nothing counted}"
    exit 0
  fi
done
echo "$name: stopped after $calls calls with more to do (${totals:-nothing counted}); the next run goes on from here"
