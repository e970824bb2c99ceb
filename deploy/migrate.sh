#!/usr/bin/env bash
# Runs the database migrations of one environment: builds ConfigMap license-edge-migrations from
# migrations/*.sql, replaces the migration Job (deploy/overlays/<env>/migrate) and waits for it.
#
# Usage: deploy/migrate.sh staging|production            apply, wait, print the Job's log
#        deploy/migrate.sh staging|production --render   print the manifests only (no cluster)
#
# Kustomize may not read files outside a kustomization's folder, and its configMapGenerator
# wants every file listed by name; this script keeps the ConfigMap in step with migrations/
# instead, so adding a migration is adding a file. See deploy/README.md, "Migrations".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "migrate.sh: $*" >&2
  exit 1
}

[ "$#" -ge 1 ] && [ "$#" -le 2 ] || usage
env_name="$1"
mode="${2:-apply}"
case "$mode" in apply | --render) ;; *) usage ;; esac
overlay="$root/deploy/overlays/$env_name/migrate"
[ -f "$overlay/kustomization.yaml" ] || usage
command -v kubectl >/dev/null || die "kubectl is not installed"

namespace="$(sed -n 's/^namespace: *//p' "$overlay/kustomization.yaml")"
[ -n "$namespace" ] || die "$overlay/kustomization.yaml sets no namespace"

# Same rule as run-migrations.sh, checked here too so a bad name fails before any cluster call.
from_files=()
shopt -s nullglob
for file in "$root"/migrations/*.sql; do
  name="$(basename "$file")"
  [[ "$name" =~ ^[0-9]{4}_[a-z0-9_]+\.sql$ ]] ||
    die "migrations/$name: migration files are named NNNN_name.sql (four digits, then a-z, 0-9 and _)"
  from_files+=("--from-file=$name=$file")
done

render() {
  kubectl create configmap license-edge-migrations --namespace "$namespace" \
    "${from_files[@]}" --dry-run=client -o yaml
  echo "---"
  kubectl kustomize "$overlay"
}

if [ "$mode" = --render ]; then
  render
  exit 0
fi

# The Job reads Secret license-edge-migrator, which External Secrets Operator makes from the
# objects of the app's overlay (deploy/external-secrets). Before the first `kubectl apply -k` of
# the overlay they do not exist yet: apply those objects alone (selected by their label) and
# wait for the Secret, rather than start a Job that cannot start its pod.
secrets_selector="app.kubernetes.io/component=secrets"
if ! kubectl -n "$namespace" get secret license-edge-migrator >/dev/null 2>&1; then
  echo "migrate.sh: no Secret license-edge-migrator yet: applying the overlay's External Secrets objects" >&2
  kubectl kustomize "$root/deploy/overlays/$env_name" | kubectl apply -l "$secrets_selector" -f -
  kubectl -n "$namespace" wait --for=condition=Ready externalsecret/license-edge-migrator --timeout=180s ||
    die "ESO did not make Secret license-edge-migrator; see: kubectl -n $namespace describe externalsecret license-edge-migrator"
fi

job=license-edge-migrate
echo "migrate.sh: ${#from_files[@]} migration file(s) for namespace $namespace" >&2
# A Job's pod template is immutable: the previous run's Job goes first (its log with it).
kubectl -n "$namespace" delete job "$job" --ignore-not-found --wait=true
render | kubectl apply -f -

deadline=$((SECONDS + 900))
while :; do
  succeeded="$(kubectl -n "$namespace" get job "$job" -o jsonpath='{.status.succeeded}')"
  failed="$(kubectl -n "$namespace" get job "$job" -o jsonpath='{.status.failed}')"
  if [ "${succeeded:-0}" -ge 1 ] || [ "${failed:-0}" -ge 1 ] || [ "$SECONDS" -ge "$deadline" ]; then
    break
  fi
  sleep 3
done
kubectl -n "$namespace" logs "job/$job" || true
[ "${succeeded:-0}" -ge 1 ] || die "the migration Job did not succeed; see its log above and: kubectl -n $namespace describe job/$job"
echo "migrate.sh: migrations applied" >&2
