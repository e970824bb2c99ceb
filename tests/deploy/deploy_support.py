"""What the deploy tests share: the repository's paths, spin.toml, kubectl, Spin's routing.

Nothing here contacts a network address: kubectl only renders (`kubectl kustomize`,
`kubectl create --dry-run=client`), the PostgreSQL the migration tests use is the
throwaway one scripts/test.sh starts on 127.0.0.1, and the key-value sweep's script talks to a
stand-in for the app that test_kv_sweep.py serves on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "overlays"
SECRET_TEMPLATES = DEPLOY / "secrets"
PRODUCTION_RUNTIME_CONFIG = ROOT / "runtime-config" / "production.toml"
PLACEHOLDER = "REPLACE_ME"
# The URL the Secret template of the runtime config is rendered with.
PLACEHOLDER_REDIS_URL = f"rediss://:{PLACEHOLDER}@{PLACEHOLDER}:6378"

# The two health routes the health component serves (besides what spin.toml says).
LIVENESS_PATH = "/api/v1/health/"
READINESS_PATH = "/api/v1/health/ready/"

# The admin route the key-value sweep CronJob calls, with POST, and the CronJob's name (the
# README's `kubectl create job --from=cronjob/...` names it too).
SWEEP_PATH = "/api/v1/admin/kv/sweep"
SWEEP_CRONJOB = "license-edge-kv-sweep"
# The exit status of kv-sweep.sh that retrying cannot cure (the CronJob fails the Job at once).
SWEEP_EXIT_NO_RETRY = 2

# Kinds that come from CRDs (checked by hand against the operators' types) rather than from
# Kubernetes' own schemas.
SPINAPP_API = "core.spinkube.dev/v1alpha1"
CUSTOM_KINDS = {
    (SPINAPP_API, "SpinApp"),
    (SPINAPP_API, "SpinAppExecutor"),
    ("runtime.spinkube.dev/v1alpha1", "Shim"),
}
K8S_VERSION = "1.32"


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise AssertionError(
            "kubectl is not installed. Install kubectl v1.32 (it carries kustomize v5.5): "
            "https://kubernetes.io/docs/tasks/tools/ , or on Debian/Ubuntu the `kubectl` package "
            "from the Kubernetes apt repository (pkgs.k8s.io, v1.32)."
        )
    return path


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Runs a command offline: kubectl gets no kubeconfig, so it cannot reach any cluster."""
    env = dict(os.environ)
    env["KUBECONFIG"] = os.devnull
    env.update(kwargs.pop("env", {}))
    result = subprocess.run(args, capture_output=True, text=True, env=env, **kwargs)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def parse_docs(text: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"not a mapping: {doc!r}"
        assert doc.get("apiVersion") and doc.get("kind"), f"no apiVersion/kind: {doc!r}"
        assert doc.get("metadata", {}).get("name"), f"no metadata.name: {doc!r}"
    return docs


def render(kustomization_dir: Path) -> list[dict]:
    return parse_docs(run([kubectl(), "kustomize", str(kustomization_dir)]).stdout)


def kustomizations() -> list[Path]:
    """Every folder under deploy/ with a kustomization.yaml."""
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def environments() -> list[str]:
    """The environments: overlays/<env> that render the app (and overlays/<env>/migrate)."""
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    """The pod template's spec of a Job or a CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def pod_labels(workload: dict) -> dict[str, str]:
    """The pod template's labels of a Job or a CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]


def spin_manifest() -> dict:
    with open(ROOT / "spin.toml", "rb") as f:
        return tomllib.load(f)


def secret_templates() -> dict[str, dict]:
    """deploy/secrets/*.yaml by Secret name."""
    templates = {}
    for path in sorted(SECRET_TEMPLATES.glob("*.yaml")):
        for doc in parse_docs(path.read_text()):
            assert doc["kind"] == "Secret", f"{path}: only Secret templates belong here"
            name = doc["metadata"]["name"]
            assert name not in templates, f"two templates for Secret {name}"
            templates[name] = doc
    return templates


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def envsubst_redis_url(template: str, url: str) -> str:
    """`envsubst '${REDIS_URL}'`: replaces both $REDIS_URL and ${REDIS_URL}, nothing else."""
    return re.sub(r"\$\{REDIS_URL\}|\$REDIS_URL(?![A-Za-z0-9_])", lambda _: url, template)


# --- Spin's HTTP routing, as shared/SPIN-FACTS.md records it ---------------------------------


@dataclass(frozen=True)
class Route:
    route: str
    component: str

    @property
    def wildcard(self) -> bool:
        return self.route.endswith("/...")

    @property
    def base(self) -> str:
        """The route without `/...` and without a trailing slash."""
        base = self.route[: -len("/...")] if self.wildcard else self.route
        return base.rstrip("/") or "/"


def routes() -> list[Route]:
    return [Route(t["route"], t["component"]) for t in spin_manifest()["trigger"]["http"]]


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    return len(pattern) == len(path) and all(
        p.startswith(":") or p == s for p, s in zip(pattern, path)
    )


def served_by(path: str) -> Route | None:
    """The route Spin would pick for `path` (no query string), or None for its empty 404."""
    path = "/" + path.lstrip("/")  # leading duplicate slashes are ignored
    candidates = []
    for r in routes():
        base = r.base.strip("/").split("/") if r.base != "/" else []
        if r.wildcard:
            if path == r.base or path.startswith(r.base.rstrip("/") + "/"):
                candidates.append((0, len(base), r))
        else:
            # An exact route also matches with one trailing slash, never deeper.
            trimmed = path[:-1] if path.endswith("/") and path != "/" else path
            parts = trimmed.strip("/").split("/") if trimmed != "/" else []
            if _segments_match(base, parts):
                candidates.append((1, len(base), r))
    if not candidates:
        return None
    # The most specific route wins: exact before wildcard, longer before shorter.
    return max(candidates, key=lambda c: (c[0], c[1]))[2]
