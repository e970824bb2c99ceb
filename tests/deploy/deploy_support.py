"""What the deploy tests share: the repository's paths, spin.toml, kubectl, Spin's routing.

Nothing here contacts a network address: kubectl only renders (`kubectl kustomize`,
`kubectl create --dry-run=client`), the PostgreSQL the migration tests use is the
throwaway one scripts/test.sh starts on 127.0.0.1, and the script of the key-value sweep and
prune CronJobs talks to a stand-in for the app that test_admin_batch.py serves on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jsonschema
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

# The two SpinApps of one image (selective deployment, spin-operator v0.6.1's spec.components) and
# the components each runs: the public one, whose Service goes to the internet, and the admin one,
# whose Service and pods only internal sources reach. Each runs health for its probes.
PUBLIC_APP = "license-edge"
ADMIN_APP = "license-edge-admin"
SPINAPP_COMPONENTS = {
    PUBLIC_APP: ("health", "validate", "acquire"),
    ADMIN_APP: ("admin", "health"),
}
# Where every admin route lives (spin.toml: /api/v1/admin/...).
ADMIN_ROUTE = "/api/v1/admin/..."
# The literal a SpinApp binds a required variable to when none of its components reads it (Spin
# refuses to start while a required variable of the app has no value, read or not).
UNUSED_VALUE = "unused"
# The label of a namespace whose pods may call the admin API, and config.env's key of the
# internal network outside the cluster that may.
ADMIN_ACCESS_LABEL = ("license-edge/admin-access", "true")
ADMIN_CIDR_KEY = "admin_cidr"
# The ingress policies of the two SpinApps' pods.
PUBLIC_INGRESS_POLICY = "license-edge-ingress"
ADMIN_INGRESS_POLICY = "license-edge-admin-ingress"

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class AdminCronJob:
    """A CronJob that runs deploy/base/admin-batch.sh: it POSTs to one of the app's batched admin
    routes, again while the answer says "more": true."""

    name: str  # the CronJob (the README's `kubectl create job --from=cronjob/...` names it too)
    component: str  # its pods' app.kubernetes.io/component label
    path: str  # the admin route it POSTs to
    period: int  # seconds between its slots
    schedule: str  # a pattern its schedule matches: one slot a period
    # The JSON body it sends, field by field, from the overlay's config.env: (key, field). None:
    # it sends no body.
    body_from_config: tuple[tuple[str, str], ...] | None = None

    def __str__(self) -> str:
        return self.component


# The key-value sweep: hourly, an empty body.
SWEEP = AdminCronJob(
    "license-edge-kv-sweep", "kv-sweep", "/api/v1/admin/kv/sweep", HOUR, r"[1-5]?[0-9] \* \* \* \*"
)
# The prune: daily, the retention of the overlay's config.env.
PRUNE = AdminCronJob(
    "license-edge-prune",
    "prune",
    "/api/v1/admin/prune",
    DAY,
    r"[1-5]?[0-9] (1?[0-9]|2[0-3]) \* \* \*",
    (
        ("prune_sessions_older_than_days", "sessions_older_than_days"),
        ("prune_audit_older_than_days", "audit_older_than_days"),
    ),
)
ADMIN_CRONJOBS = (SWEEP, PRUNE)
# The days the prune route accepts for either retention.
RETENTION_DAYS = range(1, 3650 + 1)
# The script both run, and its exit status for what retrying cannot cure (the CronJobs fail the
# Job at once on it).
ADMIN_SCRIPT = DEPLOY / "base" / "admin-batch.sh"
ADMIN_EXIT_NO_RETRY = 2
# The egress policy that selects both CronJobs' pods.
ADMIN_BATCH_POLICY = "license-edge-admin-batch-egress"

# Kinds that come from CRDs (checked by hand against the operators' types) rather than from
# Kubernetes' own schemas.
SPINAPP_API = "core.spinkube.dev/v1alpha1"
CUSTOM_KINDS = {
    (SPINAPP_API, "SpinApp"),
    (SPINAPP_API, "SpinAppExecutor"),
    ("runtime.spinkube.dev/v1alpha1", "Shim"),
    # External Secrets Operator's, checked against its CRDs' schemas (tests/deploy/schemas).
    ("external-secrets.io/v1", "ExternalSecret"),
    ("external-secrets.io/v1", "SecretStore"),
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


def container_environment(
    docs: list[dict], container: dict, secrets: dict[tuple[str, str], str] | None = None
) -> dict[str, str]:
    """A container's environment as the kubelet makes it: literal values, ConfigMap keys from
    the rendered ConfigMaps, Secret keys from `secrets` ((name, key) -> value; a Secret key not
    given is left out), and $(NAME) references expanded from the entries before them."""
    assert "envFrom" not in container, "envFrom is not modelled here"
    out: dict[str, str] = {}
    for var in container.get("env", []):
        name = var["name"]
        assert name not in out, f"{name} set twice"
        if "value" in var:
            out[name] = expand_env_references(var["value"], out)
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = one(docs, "ConfigMap", ref["name"]).get("data", {})
            # Not optional: a missing key keeps the pod from starting.
            assert ref.get("optional") or ref["key"] in data, f"{name}: no key {ref['key']}"
            if ref["key"] in data:
                out[name] = data[ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if secrets and (ref["name"], ref["key"]) in secrets:
                out[name] = secrets[(ref["name"], ref["key"])]
        else:
            raise AssertionError(f"{name}: valueFrom {sorted(source)} is not modelled here")
    return out


def expand_env_references(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' expansion of an env value (kubernetes/kubernetes,
    third_party/forked/golang/expansion): $(NAME) becomes NAME's value when NAME is defined
    before it and stays as it is otherwise, $$ becomes $, and any other $ stays."""
    out = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            if value[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if value[i + 1] == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(defined.get(name, value[i : end + 1]))
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def openapi() -> dict:
    return json.loads((ROOT / "openapi.json").read_text())


def openapi_post(path: str) -> dict:
    """openapi.json's POST operation of `path`, failing plainly when it has none."""
    paths = openapi()["paths"]
    assert path in paths, f"openapi.json does not document {path}"
    assert "post" in paths[path], f"openapi.json has no POST {path}"
    return paths[path]["post"]


def openapi_validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for a schema of openapi.json (OpenAPI 3.1: JSON Schema 2020-12), its $refs to
    #/components resolved."""
    return jsonschema.Draft202012Validator({**schema, "components": openapi()["components"]})


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


def routes(components: tuple[str, ...] | None = None) -> list[Route]:
    """spin.toml's HTTP routes; with `components`, only theirs, as Spin keeps them when it runs
    only those components (spin_app::retain_components drops every other trigger)."""
    return [
        Route(t["route"], t["component"])
        for t in spin_manifest()["trigger"]["http"]
        if components is None or t["component"] in components
    ]


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    return len(pattern) == len(path) and all(
        p.startswith(":") or p == s for p, s in zip(pattern, path)
    )


def served_by(path: str, components: tuple[str, ...] | None = None) -> Route | None:
    """The route Spin would pick for `path` (no query string), or None for its empty 404; with
    `components`, in an app that runs only those."""
    path = "/" + path.lstrip("/")  # leading duplicate slashes are ignored
    candidates = []
    for r in routes(components):
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
