#!/usr/bin/env bash
# The smoke test to run after every rollout: asks a running license-edge the questions an
# operator would, one line per check, and exits 0 when every check passed, 1 when one failed,
# 2 on bad usage. Needs bash, curl and python3 (to read JSON).
#
#   scripts/smoke.sh URL                  e.g. scripts/smoke.sh https://licenses.example.com
#   LICENSE_EDGE_ADMIN_TOKEN=... scripts/smoke.sh URL
#   scripts/smoke.sh URL ADMIN_TOKEN      (as the pipeline calls it; an argument shows in `ps`)
#
# Without an admin token it changes nothing: liveness; readiness (the key-value store); the database check; the
# public key set and its cache header; acquire answering 401 without a license key; validate
# refusing a malformed token; the OpenAPI document. With the admin token (from the environment,
# as licensectl takes it, or as the second argument) it also makes a full round on a temporary
# license, with the operator token (an organization key may not create organizations):
# create (an organization "license-edge smoke test" with a product and a 1-seat license),
# acquire, validate, release, validate again (the session has ended), revoke, acquire again
# (refused). The revoked license and its organization stay, for the audit trail.
#
# SMOKE_ADMIN_URL (default: URL) is where the round's admin calls go, for a deployment that
# serves the admin API apart (on SpinKube, a port-forward to Service license-edge-admin); the
# seat and validation calls always go to URL.
#
# SMOKE_TIMEOUT (seconds, default 10) bounds each request: on real Spin a request that reads
# an unreachable Redis hangs rather than failing.
set -uo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
  echo "usage: scripts/smoke.sh URL [ADMIN_TOKEN]   (admin round: the operator token, or LICENSE_EDGE_ADMIN_TOKEN)" >&2
  exit 2
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is not installed" >&2; exit 2; }
done
base="${1%/}"
public_base="$base"
admin_base="${SMOKE_ADMIN_URL:-$base}"; admin_base="${admin_base%/}"
timeout="${SMOKE_TIMEOUT:-10}"
admin_token="${2:-${LICENSE_EDGE_ADMIN_TOKEN:-}}"
work="$(mktemp -d /tmp/le-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT

failed=0
passed=0
ok() { printf 'ok    %-26s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %-26s %s\n' "$1" "$2"; failed=$((failed + 1)); }

# http METHOD PATH [BODY [HEADER...]]: sets $status, the body in $work/body, headers in
# $work/headers. A transport failure is status 000.
http() {
  local method="$1" path="$2" body="${3:-}"
  shift 3 2>/dev/null || shift "$#"
  local args=(-sS -X "$method" --max-time "$timeout" -o "$work/body" -D "$work/headers" -w '%{http_code}')
  local h
  for h in "$@"; do args+=(-H "$h"); done
  [ -n "$body" ] && args+=(-H 'content-type: application/json' --data-binary "$body")
  status="$(curl "${args[@]}" "$base$path" 2>"$work/curl.err")" || status="${status:-000}"
  [ "$status" = 000 ] && : > "$work/body"
  read_fields
  return 0
}
# The fields the checks read from the last body, in one python3 run per answer: $f_code (the
# validation code or the error's code), $f_valid, $f_status, $f_id, $f_key, $f_session,
# $f_token, $f_checks, $f_keys (Ed25519 keys with a kid), $f_openapi, $f_paths_ok. Empty when
# absent or when the body is not JSON.
read_fields() {
  local out
  out="$(python3 -c "$fields_py" <"$work/body" 2>/dev/null)" || out=""
  { read -r f_code; read -r f_valid; read -r f_status; read -r f_id; read -r f_key; read -r f_session
    read -r f_token; read -r f_checks; read -r f_keys; read -r f_openapi; read -r f_paths_ok; } <<<"$out"
}
fields_py='
import json, sys
try:
    j = json.loads(sys.stdin.read())
except Exception:
    j = None
d = j if isinstance(j, dict) else {}
def s(v):
    return "" if v is None else (v if isinstance(v, str) else json.dumps(v))
err = d.get("error") if isinstance(d.get("error"), dict) else {}
keys = d.get("keys") if isinstance(d.get("keys"), list) else []
checks = d.get("checks") if isinstance(d.get("checks"), dict) else {}
paths = d.get("paths") if isinstance(d.get("paths"), dict) else {}
for v in [d.get("code") or err.get("code"), d.get("valid"), d.get("status"), d.get("id"),
          d.get("license_key"), d.get("session_id"), d.get("license_token"),
          ", ".join(f"{k}: {v}" for k, v in checks.items()),
          len([k for k in keys if isinstance(k, dict) and k.get("kty") == "OKP"
               and k.get("crv") == "Ed25519" and k.get("kid")]),
          d.get("openapi"), "/api/v1/licenses/acquire/" in paths]:
    print(s(v).replace("\n", " "))
'
header() { tr -d '\r' <"$work/headers" | awk -v n="$1" 'tolower($0) ~ "^" tolower(n) ":" {sub(/^[^:]*:[ \t]*/, ""); print; exit}'; }
said() { # a short account of the last answer
  if [ "$status" = 000 ]; then echo "no answer ($(tr '\n' ' ' <"$work/curl.err" | cut -c1-120))"
  else echo "$status $(head -c 160 "$work/body" | tr '\n' ' ')"; fi
}

# --- Without credentials -----------------------------------------------------------------
http GET /api/v1/health/ ""
if [ "$status" = 200 ]; then ok liveness "200"; else fail liveness "$(said)"; fi

http GET /api/v1/health/ready/ ""
if [ "$status" = 200 ] && [ "$f_status" = ready ]; then
  ok readiness "200 ($f_checks)"
elif [ -n "$f_checks" ]; then
  fail readiness "$status ($f_checks)"
else
  fail readiness "$(said)"
fi

http GET /api/v1/health/db/ ""
if [ "$status" = 200 ] && [ "$f_status" = ok ]; then ok database "200"; else fail database "$(said)"; fi

http GET /.well-known/jwks.json ""
keys="${f_keys:-0}"
cache="$(header cache-control)"
if [ "$status" = 200 ] && [ "${keys:-0}" -ge 1 ] && [[ "$cache" == *max-age=* ]]; then
  ok jwks "200, $keys Ed25519 key(s), cache-control: $cache"
elif [ "$status" = 200 ] && [ "${keys:-0}" -ge 1 ]; then
  fail jwks "200 with keys but no max-age in cache-control (${cache:-none})"
else
  fail jwks "$(said)"
fi

http POST /api/v1/licenses/acquire/ '{"machine_id": "smoke-test"}'
if [ "$status" = 401 ] && [ "$f_code" = unauthorized ]; then
  ok "acquire without a key" "401 unauthorized"
else
  fail "acquire without a key" "$(said)"
fi

http POST /api/v1/licenses/validate/ '{"token": "not.a-token"}'
if [ "$status" = 200 ] && [ "$f_valid" = false ] && [ "$f_code" = MALFORMED ]; then
  ok "validate a malformed token" "200 valid=false MALFORMED"
else
  fail "validate a malformed token" "$(said)"
fi

http GET /api/v1/openapi.json ""
if [ "$status" = 200 ] && [ -n "$f_openapi" ] && [ "$f_paths_ok" = true ]; then
  ok openapi "200, OpenAPI $f_openapi"
else
  fail openapi "$(said)"
fi

# --- The admin round ---------------------------------------------------------------------
if [ -z "$admin_token" ]; then
  echo "skip  admin round                LICENSE_EDGE_ADMIN_TOKEN is not set"
else
  auth="authorization: Bearer $admin_token"
  admin() { base="$admin_base"; http "$@"; base="$public_base"; }
  round() { # the round stops at its first failed step
    admin POST /api/v1/admin/organizations '{"name": "license-edge smoke test"}' "$auth"
    org="$f_id"
    admin POST /api/v1/admin/products "{\"organization_id\": \"$org\", \"code\": \"smoke-test\", \"name\": \"Smoke test\"}" "$auth"
    product="$f_id"
    [ "$status" = 201 ] && admin POST /api/v1/admin/licenses "{\"product_id\": \"$product\", \"max_seats\": 1, \"lease_seconds\": 60, \"plan\": \"smoke\"}" "$auth"
    license="$f_id"; key="$f_key"
    if [ "$status" = 201 ] && [ -n "$key" ]; then ok "admin: temporary license" "201 $license"
    else fail "admin: temporary license" "$(said)"; return; fi

    local lic_auth="authorization: Bearer $key"
    http POST /api/v1/licenses/acquire/ '{"machine_id": "smoke-test"}' "$lic_auth"
    session="$f_session"; token="$f_token"
    if [ "$status" = 201 ] && [ -n "$token" ]; then ok "round: acquire" "201 $session"
    else fail "round: acquire" "$(said)"; return; fi

    http POST /api/v1/licenses/validate/ "{\"token\": \"$token\", \"machine_id\": \"smoke-test\"}"
    if [ "$status" = 200 ] && [ "$f_code" = VALID ]; then ok "round: validate" "200 VALID"
    else fail "round: validate" "$(said)"; return; fi

    http DELETE "/api/v1/licenses/sessions/$session/" "" "$lic_auth"
    if [ "$status" = 200 ] || [ "$status" = 204 ]; then ok "round: release" "$status"
    else fail "round: release" "$(said)"; return; fi

    http POST /api/v1/licenses/validate/ "{\"token\": \"$token\", \"machine_id\": \"smoke-test\"}"
    if [ "$status" = 200 ] && [ "$f_code" = SESSION_ENDED ]; then ok "round: validate released" "200 SESSION_ENDED"
    else fail "round: validate released" "$(said)"; return; fi

    admin POST "/api/v1/admin/licenses/$license/revoke" '{"reason": "smoke test"}' "$auth"
    if [ "$status" = 200 ] && [ "$f_status" = revoked ]; then ok "round: revoke" "200 revoked"
    else fail "round: revoke" "$(said)"; return; fi

    http POST /api/v1/licenses/acquire/ '{"machine_id": "smoke-test"}' "$lic_auth"
    if [ "$status" = 403 ] && [ "$f_code" = license_revoked ]; then
      ok "round: acquire revoked" "403 license_revoked"
    else fail "round: acquire revoked" "$(said)"; fi
  }
  round
fi

if [ "$failed" -gt 0 ]; then
  echo "smoke: $failed check(s) FAILED, $passed passed, against $base"
  exit 1
fi
echo "smoke: all $passed checks passed against $base"
