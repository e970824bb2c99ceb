"""The Kubernetes manifests in deploy/ against spin.toml, the operators' rules and Kubernetes'
own schemas. Everything is rendered with `kubectl kustomize`, as an operator would apply it."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from deploy_support import (
    ADMIN_ACCESS_LABEL,
    ADMIN_APP,
    ADMIN_BATCH_POLICY,
    ADMIN_CIDR_KEY,
    ADMIN_INGRESS_POLICY,
    ADMIN_ROUTE,
    ADMIN_CRONJOBS,
    ADMIN_EXIT_NO_RETRY,
    ADMIN_SCRIPT,
    CUSTOM_KINDS,
    DEPLOY,
    K8S_VERSION,
    LIVENESS_PATH,
    OVERLAYS,
    PLACEHOLDER,
    PLACEHOLDER_REDIS_URL,
    PRODUCTION_RUNTIME_CONFIG,
    PUBLIC_APP,
    PUBLIC_INGRESS_POLICY,
    READINESS_PATH,
    PRUNE,
    RETENTION_DAYS,
    ROOT,
    SPINAPP_API,
    SPINAPP_COMPONENTS,
    SWEEP,
    UNUSED_VALUE,
    AdminCronJob,
    container_environment,
    environments,
    envsubst_redis_url,
    one,
    openapi,
    openapi_post,
    openapi_validator,
    parse_docs,
    pod_labels,
    pod_spec,
    read_env_file,
    render,
    routes,
    secret_templates,
    served_by,
    spin_manifest,
)

ENVS = environments()

# The fields of SpinAppSpec, HealthProbe and SpinVar in spin-operator v0.6.1
# (api/v1alpha1/spinapp_types.go). Anything else is a typo the API server would drop.
SPINAPP_SPEC_FIELDS = {
    "executor", "image", "imagePullSecrets", "checks", "replicas", "enableAutoscaling",
    "runtimeConfig", "volumes", "volumeMounts", "variables", "serviceAnnotations",
    "deploymentAnnotations", "podAnnotations", "podLabels", "resources", "components",
    "serviceAccountName", "invocationLimits",
}  # fmt: skip
PROBE_FIELDS = {
    "httpGet", "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
    "failureThreshold",
}  # fmt: skip
RUNTIME_CONFIG_FIELDS = {"loadFromSecret", "sqliteDatabases", "keyValueStores", "llmCompute"}
EXECUTOR_DEPLOYMENT_FIELDS = {
    "runtimeClassName", "spinImage", "caCertSecret", "installDefaultCACerts", "otel",
}  # fmt: skip
# Secret keys that are not credentials (the migrator's libpq connection settings).
NOT_CREDENTIALS = {("license-edge-migrator", k) for k in ("PGPORT", "PGDATABASE", "PGUSER")}
README = DEPLOY / "README.md"
# The port the operator gives the app's container (spin-operator v0.6.1, pkg/spinapp:
# HTTPPortName, DefaultHTTPPort); its Service's port 80 targets it by that name.
APP_PORT_NAME, APP_PORT = "http-app", 80


def spinapp(docs: list[dict], name: str = PUBLIC_APP) -> dict:
    return one(docs, "SpinApp", name)


def variables(docs: list[dict], app: str = PUBLIC_APP) -> dict[str, dict]:
    out = {}
    for var in spinapp(docs, app)["spec"].get("variables", []):
        assert var["name"] not in out, f"{app}: variable {var['name']} bound twice"
        out[var["name"]] = var
    return out


# Each test of a SpinApp runs for both: the public one and the admin one.
APPS = pytest.mark.parametrize("app", sorted(SPINAPP_COMPONENTS))


def components_read(components: tuple[str, ...]) -> set[str]:
    """The application variables that `components` read: through their [component.*.variables]
    templates and their allowed_outbound_hosts (db_host)."""
    read: set[str] = set()
    for name in components:
        component = spin_manifest()["component"][name]
        texts = list(component.get("variables", {}).values())
        texts += component.get("allowed_outbound_hosts", [])
        for text in texts:
            read |= set(re.findall(r"\{\{\s*([a-z0-9_]+)\s*\}\}", text))
    return read


# --- Rendering --------------------------------------------------------------------------------


def test_every_kustomization_renders_and_parses(rendered):
    # The fixture renders every kustomization under deploy/ and parses every document.
    expected = {f"overlays/{env}" for env in ENVS} | {f"overlays/{env}/migrate" for env in ENVS}
    assert expected <= set(rendered), sorted(rendered)
    for name, docs in rendered.items():
        assert docs, f"{name} renders nothing"


def test_every_environment_has_an_app_and_a_migration_overlay():
    for env in ENVS:
        assert (OVERLAYS / env / "migrate" / "kustomization.yaml").is_file(), env
        assert (OVERLAYS / env / "config.env").is_file(), env


def test_core_objects_validate_against_kubernetes_schemas(rendered):
    checked = 0
    for name, docs in rendered.items():
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {err.message}")
            checked += 1
    assert checked >= 6


def test_secret_templates_validate_against_kubernetes_schemas():
    for name, doc in secret_templates().items():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_object_is_either_a_core_object_or_a_known_custom_kind(rendered):
    core = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "policy/v1"}
    for name, docs in rendered.items():
        for doc in docs:
            kind = (doc["apiVersion"], doc["kind"])
            assert doc["apiVersion"] in core or kind in CUSTOM_KINDS, f"{name}: unchecked {kind}"


# --- The SpinApps against spin.toml ----------------------------------------------------------


def test_the_spinapps_split_the_components_and_admin_runs_apart():
    # Selective deployment: spec.components of spin-operator v0.6.1 (a list of at least one
    # component name), passed to containerd-shim-spin as SPIN_COMPONENTS_TO_RETAIN.
    declared = set(spin_manifest()["component"])
    for app, components in SPINAPP_COMPONENTS.items():
        assert set(components) <= declared, (app, components)
    # Between them they run every component, and admin only in the admin SpinApp.
    assert set().union(*SPINAPP_COMPONENTS.values()) == declared
    assert "admin" not in SPINAPP_COMPONENTS[PUBLIC_APP]
    assert "admin" in SPINAPP_COMPONENTS[ADMIN_APP]
    assert "health" in SPINAPP_COMPONENTS[PUBLIC_APP] and "health" in SPINAPP_COMPONENTS[ADMIN_APP]


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_runs_exactly_its_components(apps, env, app):
    spec = spinapp(apps[env], app)["spec"]
    components = spec.get("components")
    # Without the field the operator runs every component, admin included.
    assert components is not None, f"{env}: SpinApp {app} has no spec.components"
    assert isinstance(components, list) and len(components) >= 1, components
    assert all(isinstance(c, str) for c in components) and len(set(components)) == len(components)
    assert sorted(components) == sorted(SPINAPP_COMPONENTS[app]), (env, app, components)


@pytest.mark.parametrize("env", ENVS)
def test_every_spinapp_is_one_of_the_two(apps, env):
    names = [d["metadata"]["name"] for d in apps[env] if d["kind"] == "SpinApp"]
    assert sorted(names) == sorted(SPINAPP_COMPONENTS), names


def admin_paths() -> list[str]:
    """Paths under the admin routes: each documented one, the prefix itself and an undocumented
    one."""
    documented = [p for p in openapi()["paths"] if p.startswith("/api/v1/admin")]
    assert documented, "openapi.json documents no admin route"
    return documented + [
        "/api/v1/admin", "/api/v1/admin/", "/api/v1/admin/not-a-route", "//api/v1/admin/kv/sweep",
    ]  # fmt: skip


def test_the_public_spinapp_serves_no_admin_route_and_the_admin_one_serves_all():
    public, admin = SPINAPP_COMPONENTS[PUBLIC_APP], SPINAPP_COMPONENTS[ADMIN_APP]
    assert any(r.route == ADMIN_ROUTE and r.component == "admin" for r in routes())
    for path in admin_paths():
        concrete = re.sub(r"\{[^}]+\}", "0", path)
        # On the public pods no route matches: Spin answers its empty 404.
        assert served_by(concrete, public) is None, (path, served_by(concrete, public))
        # On the admin pods the admin component answers it.
        route = served_by(concrete, admin)
        assert route is not None and route.component == "admin", (path, route)
    # And every other documented path is the public SpinApp's (none is left to the admin one).
    for path in openapi()["paths"]:
        if not path.startswith("/api/v1/admin"):
            concrete = re.sub(r"\{[^}]+\}", "0", path)
            route = served_by(concrete, public)
            assert route is not None and route.component != "admin", (path, route)
            assert route == served_by(concrete), path


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_variables_cover_every_required_variable(apps, env, app):
    # Spin 3.6.3 (VariablesValidatorHook) refuses to start while any variable of the app without
    # a default has no value, whichever components run.
    declared = spin_manifest()["variables"]
    required = {name for name, spec in declared.items() if spec.get("required")}
    assert required, "spin.toml declares no required variable"
    missing = required - set(variables(apps[env], app))
    assert not missing, f"{env}: spin.toml requires {sorted(missing)} but {app} binds none"


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_variables_are_declared_in_spin_toml(apps, env, app):
    declared = spin_manifest()["variables"]
    for name in variables(apps[env], app):
        assert name in declared, f"{env}: {app} binds {name}, which spin.toml does not declare"


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_variable_names_survive_the_operators_env_mapping(apps, env, app):
    # The operator passes each variable as SPIN_VARIABLE_<NAME upper-cased>; Spin reads it back
    # lower-cased. Only lower-case names, digits and _ survive the round trip.
    for name in variables(apps[env], app):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert f"SPIN_VARIABLE_{name.upper()}"[len("SPIN_VARIABLE_") :].lower() == name


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_secret_variables_come_only_from_secrets_and_only_where_read(apps, env, app):
    # A secret variable a component of this SpinApp reads comes from its Secret; one that none
    # reads (Spin still wants a value) is the literal "unused", so the admin token never reaches
    # the public pods and the signing key never reaches the admin pods.
    declared = spin_manifest()["variables"]
    read = components_read(SPINAPP_COMPONENTS[app])
    for name, var in variables(apps[env], app).items():
        if not declared.get(name, {}).get("secret"):
            continue
        if name in read:
            assert "value" not in var, f"{env}: {app}: secret variable {name} has a literal value"
            assert set(var.get("valueFrom", {})) == {"secretKeyRef"}, (
                f"{env}: {app}: secret variable {name} must come from a Secret"
            )
        else:
            assert var == {"name": name, "value": UNUSED_VALUE}, (
                f"{env}: {app} runs no component that reads {name}: bind it to {UNUSED_VALUE!r}"
            )


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_binds_what_its_components_read_and_unused_only_what_they_do_not(apps, env, app):
    read = components_read(SPINAPP_COMPONENTS[app])
    bound = variables(apps[env], app)
    for name, var in bound.items():
        if var.get("value") == UNUSED_VALUE:
            assert name not in read, f"{env}: {app} reads {name} but binds it to {UNUSED_VALUE!r}"
        else:
            assert "valueFrom" in var, f"{env}: {app}: {name} has a literal value"
    # Every variable its components read is bound from the environment's Secrets or ConfigMap:
    # no component of either SpinApp runs on spin.toml's development defaults.
    assert read - set(bound) == set(), (env, app, sorted(read - set(bound)))


def test_unused_admin_token_is_no_operator_token():
    # Were the admin component ever started beside "admin_token = unused" (spec.components lost,
    # say), "unused" must not work as an operator token: the component ignores configured tokens
    # shorter than MIN_ADMIN_TOKEN_LEN (src/admin/mod.rs). (Organization keys do not depend on
    # it: spec.components, checked above, is what keeps the admin routes off the public pods.)
    source = (ROOT / "src" / "admin" / "mod.rs").read_text()
    match = re.search(r"pub const MIN_ADMIN_TOKEN_LEN: usize = (\d+);", source)
    assert match, "src/admin/mod.rs no longer declares MIN_ADMIN_TOKEN_LEN"
    assert len(UNUSED_VALUE) < int(match[1])


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_variable_sources_exist(apps, env, app):
    docs = apps[env]
    templates = secret_templates()
    for name, var in variables(docs, app).items():
        assert ("value" in var) != ("valueFrom" in var), f"{name}: exactly one of value/valueFrom"
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            config_map = one(docs, "ConfigMap", ref["name"])
            assert ref["key"] in config_map["data"], f"{name}: no key {ref['key']}"
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["name"] in templates, f"{name}: no template for Secret {ref['name']}"
            assert ref["key"] in templates[ref["name"]]["stringData"], f"{name}: no key"


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_health_checks_use_routes_the_app_serves(apps, env, app):
    checks = spinapp(apps[env], app)["spec"]["checks"]
    components = SPINAPP_COMPONENTS[app]
    expected = {"liveness": LIVENESS_PATH, "readiness": READINESS_PATH}
    assert set(checks) == set(expected)
    for probe, path in expected.items():
        got = checks[probe]["httpGet"]["path"]
        assert got == path, f"{env}: {app}: {probe} probes {got}, expected {path}"
        # Served by a component this SpinApp runs.
        route = served_by(got, components)
        assert route is not None, f"{env}: {app} runs no component that serves {got}"
        assert route.component == "health", f"{env}: {app}: {got} is served by {route.component}"
    # And each goes to its own route: readiness must not fall back to liveness.
    assert served_by(READINESS_PATH).route != served_by(LIVENESS_PATH).route


def test_route_matching_follows_spin():
    # A guard on the matcher the health-check test relies on.
    assert served_by("/api/v1/health").route == "/api/v1/health"
    assert served_by("/api/v1/health/ready/").route == "/api/v1/health/ready"
    assert served_by("/api/v1/health/ready/deeper") is None
    assert served_by("/api/v1/healthz") is None
    assert served_by("/api/v1/licenses/sessions/abc/heartbeat/").component == "acquire"
    assert {r.component for r in routes()} >= {"health", "validate", "acquire", "admin"}
    # With only some components, the others' routes are gone, not handed to a neighbour.
    assert served_by("/api/v1/admin/kv/sweep").component == "admin"
    assert served_by("/api/v1/admin/kv/sweep", ("health", "validate")) is None
    assert served_by("/api/v1/health/ready", ("admin",)) is None
    assert served_by("/api/v1/health/ready", ("admin", "health")).component == "health"


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_probe_settings_are_sane(apps, env, app):
    checks = spinapp(apps[env], app)["spec"]["checks"]
    for probe in checks.values():
        assert set(probe) <= PROBE_FIELDS, set(probe) - PROBE_FIELDS
        # A Redis outage makes key-value calls hang on real Spin: a probe must time out.
        assert 1 <= probe["timeoutSeconds"] < probe["periodSeconds"]
    # Liveness must not restart pods over a dependency outage faster than readiness reacts.
    assert checks["liveness"]["failureThreshold"] >= 3


# --- The SpinApp and its executor against the operator ----------------------------------------


@APPS
@pytest.mark.parametrize("env", ENVS)
def test_spinapp_has_what_the_operator_requires(apps, env, app):
    docs = apps[env]
    app = spinapp(docs, app)
    assert app["apiVersion"] == SPINAPP_API
    spec = app["spec"]
    assert set(spec) <= SPINAPP_SPEC_FIELDS, set(spec) - SPINAPP_SPEC_FIELDS
    # CRD: image is required. The overlay must have replaced the base's bare name.
    assert isinstance(spec["image"], str) and "/" in spec["image"], spec["image"]
    # Webhook: replicas > 0 unless autoscaling, and never both.
    assert not spec.get("enableAutoscaling")
    assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1
    # Webhook: the executor must be set and exist in the SpinApp's namespace.
    executor = one(docs, "SpinAppExecutor", spec["executor"])
    assert executor["metadata"].get("namespace") == app["metadata"].get("namespace")
    assert spec["executor"] == "containerd-shim-spin"
    # CRD: every probe's httpGet has a path; every variable a name.
    for probe in spec["checks"].values():
        assert probe["httpGet"]["path"].startswith("/")
    for var in spec["variables"]:
        assert var["name"]
    # Runtime config from our own Secret only (the operator ignores the rest when it is set).
    assert set(spec["runtimeConfig"]) == {"loadFromSecret"}
    assert set(spec["runtimeConfig"]) <= RUNTIME_CONFIG_FIELDS
    # The ServiceAccount it names is rendered alongside.
    one(docs, "ServiceAccount", spec["serviceAccountName"])
    for field in ("requests", "limits"):
        assert spec["resources"][field]["memory"]
    # The operator's own labels stay the operator's: the Services and NetworkPolicies tell the
    # two SpinApps' pods apart by them.
    assert not [k for k in spec.get("podLabels", {}) if k.startswith("core.spinkube.dev/")]


@pytest.mark.parametrize("env", ENVS)
def test_both_spinapps_run_one_build_with_one_configuration(apps, env):
    public, admin = (spinapp(apps[env], name)["spec"] for name in (PUBLIC_APP, ADMIN_APP))
    for field in ("image", "executor", "runtimeConfig", "serviceAccountName", "checks"):
        assert public[field] == admin[field], field
    # A changed Secret rolls both (the overlay's secrets-revision annotation).
    assert public["podAnnotations"] == admin["podAnnotations"], env
    assert "license-edge/secrets-revision" in public["podAnnotations"]
    # Where both read a variable, they read it from the same place.
    shared = set(variables(apps[env], PUBLIC_APP)) & set(variables(apps[env], ADMIN_APP))
    for name in shared:
        a, b = variables(apps[env], PUBLIC_APP)[name], variables(apps[env], ADMIN_APP)[name]
        if UNUSED_VALUE not in (a.get("value"), b.get("value")):
            assert a == b, name


@pytest.mark.parametrize("env", ENVS)
def test_executor_runs_the_spin_shim(apps, env):
    executor = one(apps[env], "SpinAppExecutor")
    spec = executor["spec"]
    assert spec["createDeployment"] is True
    config = spec["deploymentConfig"]
    assert set(config) <= EXECUTOR_DEPLOYMENT_FIELDS
    assert "spinImage" not in config, "the shim, not a Spin container image"
    shim = shim_manifest()
    assert config["runtimeClassName"] == shim["spec"]["runtimeClass"]["name"] == "wasmtime-spin-v2"
    # The CA bundle that verifies Memorystore's TLS certificate has a template.
    assert "ca-certificates.crt" in secret_templates()[config["caCertSecret"]]["stringData"]


def shim_manifest() -> dict:
    (doc,) = parse_docs((DEPLOY / "cluster" / "shim-spin.yaml").read_text())
    return doc


def test_shim_pins_a_spin_3_shim():
    shim = shim_manifest()
    assert (shim["apiVersion"], shim["kind"]) == ("runtime.spinkube.dev/v1alpha1", "Shim")
    spec = shim["spec"]
    # Required by runtime-class-manager v0.2.0's Shim CRD.
    assert {"fetchStrategy", "rolloutStrategy", "runtimeClass"} <= set(spec)
    assert spec["runtimeClass"]["handler"] and spec["runtimeClass"]["name"]
    assert spec["rolloutStrategy"]["type"] in {"rolling", "recreate"}
    platforms = spec["fetchStrategy"]["platforms"]
    assert {p["arch"] for p in platforms} == {"x86_64", "aarch64"}
    for p in platforms:
        assert p["os"] == "linux"
        # v0.24.0 runs Spin 3.6.3; v0.25.x runs Spin 4.0.1, which this app does not support.
        assert "/download/v0.24.0/" in p["location"], p["location"]
    assert spec["nodeSelector"] == {"spin": "true"}


# --- Secrets ----------------------------------------------------------------------------------


def test_no_overlay_renders_a_secret(rendered):
    # Real Secrets are made with kubectl (deploy/README.md), so `kubectl apply -k` can never
    # overwrite one with a template.
    for name, docs in rendered.items():
        assert not [d for d in docs if d["kind"] == "Secret"], f"{name} renders a Secret"


def test_secret_templates_hold_only_placeholders():
    templates = secret_templates()
    assert templates
    for name, doc in templates.items():
        assert "data" not in doc, f"{name}: templates use readable stringData only"
        for key, value in doc["stringData"].items():
            assert isinstance(value, str)
            assert "-----BEGIN" not in value, f"{name}/{key}: holds a PEM block"
            for url in re.findall(r"[a-z]+://[^\s\"']+", value):
                password = urlsplit(url).password
                assert password in (None, PLACEHOLDER), f"{name}/{key}: password in {url}"
            # Nothing long and random-looking (a key, a token, a password).
            for word in re.findall(r"[A-Za-z0-9+/=_-]{20,}", value):
                assert PLACEHOLDER in word or word.isidentifier(), f"{name}/{key}: {word}"
            if (name, key) not in NOT_CREDENTIALS:
                assert PLACEHOLDER in value, f"{name}/{key} must hold only a placeholder"


def test_postgresql_connections_verify_the_server_and_plaintext_is_for_a_laptop_only():
    # Spin's outbound PostgreSQL (tokio-postgres + native-tls) verifies chain and host name
    # whenever it uses TLS; `require` is the mode that never falls back to plaintext. The
    # migration Job's libpq uses verify-full (test_migrations.py).
    url = urlsplit(secret_templates()["license-edge-database"]["stringData"]["database_url"])
    assert parse_qs(url.query) == {"sslmode": ["require"]}, url.query
    assert url.hostname == PLACEHOLDER.lower() and url.port == 5432
    readme = README.read_text()
    laptop = readme.split("## Production-like run on a laptop", 1)[1]
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".env", ".sh", ".tf", ".json"):
            text = path.read_text()
            assert not re.search(r"sslmode=(disable|prefer|allow)", text), path
    outside = readme.replace(laptop, "")
    assert not re.search(r"sslmode=(disable|allow|prefer)\b['\s]", outside)
    assert "sslmode=disable" in laptop
    for command in readme_commands():
        for mode in re.findall(r"sslmode=([a-z-]+)", command):
            assert mode in ("require", "disable"), command


def test_every_referenced_secret_has_a_template_and_every_template_is_used(rendered):
    templates = secret_templates()
    used: set[str] = set()
    for docs in rendered.values():
        for doc in docs:
            text = json.dumps(doc)
            for ref in re.findall(r'"secretKeyRef": \{[^}]*?"name": "([^"]+)"', text):
                used.add(ref)
            for ref in re.findall(r'"secretRef": \{[^}]*?"name": "([^"]+)"', text):
                used.add(ref)
            if doc["kind"] == "SpinApp":
                used.add(doc["spec"]["runtimeConfig"]["loadFromSecret"])
            if doc["kind"] == "SpinAppExecutor":
                used.add(doc["spec"]["deploymentConfig"]["caCertSecret"])
    assert used == set(templates), (sorted(used), sorted(templates))


# --- The runtime config -----------------------------------------------------------------------


def component_store_labels() -> set[str]:
    labels = set()
    for component in spin_manifest()["component"].values():
        labels |= set(component.get("key_value_stores", []))
    return labels


def test_production_runtime_config_is_a_template_of_one_variable():
    text = PRODUCTION_RUNTIME_CONFIG.read_text()
    # Exactly one substitution point; any other $REDIS_URL (a comment, say) would be rewritten
    # by envsubst as well.
    assert text.count("${REDIS_URL}") == 1
    assert len(re.findall(r"\$\{?REDIS_URL", text)) == 1
    rendered = tomllib.loads(envsubst_redis_url(text, "redis://127.0.0.1:6379"))
    assert rendered["key_value_store"]["default"]["url"] == "redis://127.0.0.1:6379"


def test_runtime_config_secret_template_is_production_toml_rendered():
    template = secret_templates()["license-edge-runtime-config"]
    text = template["stringData"]["runtime-config.toml"]
    expected = envsubst_redis_url(PRODUCTION_RUNTIME_CONFIG.read_text(), PLACEHOLDER_REDIS_URL)
    assert text == expected, "deploy/secrets/runtime-config.yaml is out of date"


def test_envsubst_renders_production_toml_as_the_tests_do():
    # The README's command is `envsubst '${REDIS_URL}'`; where it is installed, check that it and
    # the tests' rendering agree byte for byte.
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        pytest.skip("envsubst is not installed (Debian: gettext-base)")
    out = subprocess.run(
        [envsubst, "${REDIS_URL}"],
        input=PRODUCTION_RUNTIME_CONFIG.read_text(),
        capture_output=True,
        text=True,
        env={"REDIS_URL": PLACEHOLDER_REDIS_URL, "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert out == envsubst_redis_url(PRODUCTION_RUNTIME_CONFIG.read_text(), PLACEHOLDER_REDIS_URL)


def test_runtime_config_names_the_stores_the_components_ask_for():
    template = secret_templates()["license-edge-runtime-config"]
    config = tomllib.loads(template["stringData"]["runtime-config.toml"])
    stores = config["key_value_store"]
    assert set(stores) == component_store_labels() == {"default"}
    for label, store in stores.items():
        assert store["type"] == "redis", label
        url = urlsplit(store["url"])
        # TLS and AUTH in production: Memorystore's in-transit encryption port, a password.
        assert url.scheme == "rediss", store["url"]
        assert url.password == PLACEHOLDER and url.port == 6378


# --- Configuration and network ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_config_env_gives_the_addresses(env):
    config = read_env_file(OVERLAYS / env / "config.env")
    assert {"db_host", "db_ip", "token_issuer", "redis_host", ADMIN_CIDR_KEY} <= set(config)
    # Where External Secrets Operator reads the app's Secrets.
    assert config["environment"] == env
    assert {"gcp_project", "secrets_reader_sa"} <= set(config)
    # The admin API's internal network: a private CIDR (never the internet's addresses), or the
    # placeholder until the operator sets it.
    if config[ADMIN_CIDR_KEY] != PLACEHOLDER:
        assert ipaddress.ip_network(config[ADMIN_CIDR_KEY]).is_private, config[ADMIN_CIDR_KEY]
    # The prune's retention, in days, as the route accepts it (whole numbers, 1 to 3650).
    for key, _ in PRUNE.body_from_config:
        assert re.fullmatch(r"[1-9][0-9]*", config[key]), (key, config[key])
        assert int(config[key]) in RETENTION_DAYS, (key, config[key])
    assert config["db_host"].rsplit(":", 1)[1] == "5432"
    assert config["redis_host"].rsplit(":", 1)[1] == "6378"
    public_keys = (OVERLAYS / env / "public-keys.json").read_text().strip()
    if public_keys != PLACEHOLDER:
        assert public_keys.startswith("ed25519:") or json.loads(public_keys)["keys"]


def egress_rules(policy: dict) -> list[tuple[str, list[tuple[str, int]]]]:
    out = []
    for rule in policy["spec"]["egress"]:
        peers = rule["to"]
        assert len(peers) == 1
        peer = peers[0]
        if "ipBlock" in peer:
            target = peer["ipBlock"]["cidr"]
        elif "namespaceSelector" in peer:
            assert peer == {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }, peer
            target = "kube-dns"
        else:
            # Pods of the policy's own namespace, named by their labels.
            assert set(peer) == {"podSelector"} and set(peer["podSelector"]) == {"matchLabels"}
            target = "pods " + ",".join(
                f"{k}={v}" for k, v in sorted(peer["podSelector"]["matchLabels"].items())
            )
        out.append((target, [(p["protocol"], p["port"]) for p in rule["ports"]]))
    return out


DNS = ("kube-dns", [("UDP", 53), ("TCP", 53)])


def ingress_rules(policy: dict) -> list[tuple[list[dict], list[tuple[str, int]]]]:
    """Each ingress rule as (its peers, or [] for any source; its ports)."""
    return [
        (rule.get("from", []), [(p["protocol"], p["port"]) for p in rule["ports"]])
        for rule in policy["spec"]["ingress"]
    ]


APP_PORT_ONLY = [("TCP", APP_PORT)]
# The sweep and prune CronJobs' pods, as the admin pods' ingress policy names them.
ADMIN_CRONJOB_PEER = {
    "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "license-edge"},
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": [job.component for job in ADMIN_CRONJOBS],
            }
        ],
    }
}


def check_network_policies(docs: list[dict], config: dict[str, str]) -> None:
    pg = config["db_ip"] + "/32"
    redis = config["redis_host"].rsplit(":", 1)[0] + "/32"
    public, admin = app_pod(docs, PUBLIC_APP), app_pod(docs, ADMIN_APP)
    # Egress of both SpinApps' pods: PostgreSQL, Redis, DNS.
    app = one(docs, "NetworkPolicy", "license-edge-egress")
    assert app["spec"]["policyTypes"] == ["Egress"]
    assert selects(app["spec"]["podSelector"], public.labels)
    assert selects(app["spec"]["podSelector"], admin.labels)
    for job in ADMIN_CRONJOBS:
        assert not selects(app["spec"]["podSelector"], pod_labels(one(docs, "CronJob", job.name)))
    assert egress_rules(app) == [
        (pg, [("TCP", 5432)]), (redis, [("TCP", 6378)]), DNS, (COLLECTOR_PODS, [("TCP", 4318)])
    ]
    migrate = one(docs, "NetworkPolicy", "license-edge-migrate-egress")
    assert migrate["spec"]["policyTypes"] == ["Egress"]
    assert egress_rules(migrate) == [(pg, [("TCP", 5432)]), DNS]
    # The sweep and prune CronJobs: the admin SpinApp's pods and DNS.
    admin_batch = one(docs, "NetworkPolicy", ADMIN_BATCH_POLICY)
    assert admin_batch["spec"]["policyTypes"] == ["Egress"]
    assert egress_rules(admin_batch) == [
        (f"pods core.spinkube.dev/app-name={ADMIN_APP}", APP_PORT_ONLY), DNS
    ]
    # Ingress of the public pods: any source, the app's port only.
    public_in = one(docs, "NetworkPolicy", PUBLIC_INGRESS_POLICY)
    assert public_in["spec"]["policyTypes"] == ["Ingress"]
    assert public_in["spec"]["podSelector"] == {
        "matchLabels": {"core.spinkube.dev/app-name": PUBLIC_APP}
    }
    assert ingress_rules(public_in) == [([], APP_PORT_ONLY)]
    # Ingress of the admin pods: the CronJobs, the namespaces labelled for it, the internal
    # network of config.env; the app's port only.
    admin_in = one(docs, "NetworkPolicy", ADMIN_INGRESS_POLICY)
    assert admin_in["spec"]["policyTypes"] == ["Ingress"]
    assert admin_in["spec"]["podSelector"] == {
        "matchLabels": {"core.spinkube.dev/app-name": ADMIN_APP}
    }
    key, value = ADMIN_ACCESS_LABEL
    assert ingress_rules(admin_in) == [
        ([ADMIN_CRONJOB_PEER], APP_PORT_ONLY),
        ([{"namespaceSelector": {"matchLabels": {key: value}}}], APP_PORT_ONLY),
        ([{"ipBlock": {"cidr": config[ADMIN_CIDR_KEY]}}], APP_PORT_ONLY),
    ]
    # No other policy restricts or widens ingress to the app's pods.
    for policy in docs:
        if policy["kind"] == "NetworkPolicy" and "Ingress" in policy_types(policy):
            name = policy["metadata"]["name"]
            if name in MONITORING_POLICIES:
                for pod in (public, admin):
                    assert not selects(policy["spec"]["podSelector"], pod.labels), name
            else:
                assert name in (PUBLIC_INGRESS_POLICY, ADMIN_INGRESS_POLICY), name
    check_monitoring_policies(docs)


# The collector's pods, as the app's egress policy names them (OTLP, deploy/monitoring).
COLLECTOR_PODS = "pods app.kubernetes.io/component=otel-collector,app.kubernetes.io/name=license-edge"
MONITORING_POLICIES = ("license-edge-otel-collector", "license-edge-blackbox")
METRICS_ACCESS = {"namespaceSelector": {"matchLabels": {"license-edge/metrics-access": "true"}}}


def check_monitoring_policies(docs: list[dict]) -> None:
    """The collector takes OTLP from the app's pods and scrapes from the namespaces labelled for
    it, and opens no connection; the blackbox exporter takes scrapes from the same and calls the
    public app's pods and DNS only."""
    collector = one(docs, "NetworkPolicy", "license-edge-otel-collector")
    assert collector["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert collector["spec"]["egress"] == []
    app_pods = {
        "podSelector": {
            "matchExpressions": [
                {"key": "core.spinkube.dev/app-name", "operator": "In", "values": [PUBLIC_APP, ADMIN_APP]}
            ]
        }
    }
    assert ingress_rules(collector) == [([app_pods], [("TCP", 4318)]), ([METRICS_ACCESS], [("TCP", 8889)])]
    blackbox = one(docs, "NetworkPolicy", "license-edge-blackbox")
    assert blackbox["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert ingress_rules(blackbox) == [([METRICS_ACCESS], [("TCP", 9115)])]
    assert egress_rules(blackbox) == [(f"pods core.spinkube.dev/app-name={PUBLIC_APP}", APP_PORT_ONLY), DNS]
    # Each selects the pods it is about.
    for policy, component in ((collector, "otel-collector"), (blackbox, "blackbox")):
        (workload,) = [
            d for d in docs
            if d["kind"] in ("DaemonSet", "Deployment")
            and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert selects(policy["spec"]["podSelector"], workload["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("env", ENVS)
def test_network_policies_allow_postgres_redis_and_dns_only(apps, env):
    check_network_policies(apps[env], read_env_file(OVERLAYS / env / "config.env"))


@pytest.mark.parametrize("env", ENVS)
def test_network_policy_addresses_follow_config_env(env, tmp_path):
    # Render a copy of deploy/ whose config.env holds filled-in (documentation-range) addresses.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    config_path = copy / "overlays" / env / "config.env"
    config_path.write_text(
        "db_host=db.example.internal:5432\ndb_ip=192.0.2.10\n"
        "token_issuer=https://licenses.example.com\n"
        "redis_host=192.0.2.20:6378\n"
        "admin_cidr=198.51.100.0/24\n"
        "prune_sessions_older_than_days=90\nprune_audit_older_than_days=365\n"
        f"environment={env}\ngcp_project=example-project\n"
        "secrets_reader_sa=reader@example-project.iam.gserviceaccount.com\n"
    )
    docs = render(copy / "overlays" / env)
    check_network_policies(docs, read_env_file(config_path))
    cidrs = [r[0] for r in egress_rules(one(docs, "NetworkPolicy", "license-edge-egress"))]
    assert cidrs[:2] == ["192.0.2.10/32", "192.0.2.20/32"]
    admin_in = one(docs, "NetworkPolicy", ADMIN_INGRESS_POLICY)
    assert admin_in["spec"]["ingress"][2]["from"] == [{"ipBlock": {"cidr": "198.51.100.0/24"}}]
    # The admin pods take the internal network and refuse the rest of the internet; the public
    # pods take anyone.
    admin, public = app_pod(docs, ADMIN_APP), app_pod(docs, PUBLIC_APP)
    assert allowed(docs, Outside("198.51.100.7"), admin, "TCP", APP_PORT)
    assert not allowed(docs, Outside("203.0.113.9"), admin, "TCP", APP_PORT)
    assert not allowed(docs, Outside("198.51.100.7"), admin, "TCP", 8080)
    assert allowed(docs, Outside("203.0.113.9"), public, "TCP", APP_PORT)
    # The SpinApp reads db_host from the same (hashed) ConfigMap.
    ref = variables(docs)["db_host"]["valueFrom"]["configMapKeyRef"]
    assert one(docs, "ConfigMap", ref["name"])["data"]["db_host"] == "db.example.internal:5432"


@pytest.mark.parametrize("env", ENVS)
def test_migration_job_pods_are_the_ones_its_network_policy_selects(apps, rendered, env):
    job = one(rendered[f"overlays/{env}/migrate"], "Job")
    policy = one(apps[env], "NetworkPolicy", "license-edge-migrate-egress")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert job["metadata"]["namespace"] == policy["metadata"]["namespace"]


@pytest.mark.parametrize("env", ENVS)
def test_images_are_set(apps, rendered, env):
    # registry/path/name with a tag or a digest (the overlay's `images:` entry reached spec.image),
    # the same in both SpinApps.
    image = spinapp(apps[env])["spec"]["image"]
    assert spinapp(apps[env], ADMIN_APP)["spec"]["image"] == image
    assert re.fullmatch(r"\S+/[^\s/:@]+(:[^\s/:@]+|@sha256:[0-9a-f]{64})", image), image
    job = one(rendered[f"overlays/{env}/migrate"], "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?-alpine", container["image"]), container["image"]
    # The admin CronJobs' image: a released curlimages/curl, by exact version (and digest if
    # pinned), never `latest`.
    for job in ADMIN_CRONJOBS:
        (container,) = pod_spec(one(apps[env], "CronJob", job.name))["containers"]
        assert re.fullmatch(
            r"curlimages/curl:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", container["image"]
        ), (job.name, container["image"])


def test_spin_toml_outbound_hosts_use_db_host():
    # The overlays set db_host for the allow-list; make sure spin.toml still builds it that way.
    # acquire alone may also reach the OIDC issuer's key set (oidc_jwks_origin) and the KMS
    # signer's two endpoints, named by the overlay's config.env, which keeps them at names that
    # never resolve until KMS signs.
    kms = ["{{ oidc_jwks_origin }}", "{{ kms_endpoint }}", "{{ metadata_endpoint }}"]
    for name, component in spin_manifest()["component"].items():
        hosts = component.get("allowed_outbound_hosts", [])
        if name == "acquire":
            assert hosts == ["postgres://{{ db_host }}", *kms], hosts
            continue
        for host in hosts:
            assert host == "postgres://{{ db_host }}", f"{name}: {host}"


@pytest.mark.parametrize("env", ENVS)
def test_config_env_keeps_the_kms_hosts_unreachable_while_signing_locally(env):
    config = read_env_file(OVERLAYS / env / "config.env")
    assert config["signer"] in ("local", "kms"), config["signer"]
    if config["signer"] == "local":
        assert config["kms_endpoint"].endswith(".invalid"), config["kms_endpoint"]
        assert config["metadata_endpoint"].endswith(".invalid"), config["metadata_endpoint"]
    else:
        assert config["kms_endpoint"] == "https://cloudkms.googleapis.com"
        assert config["metadata_endpoint"] == "http://metadata.google.internal"
        assert re.fullmatch(
            r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/\d+",
            config["kms_key_version"],
        ), config["kms_key_version"]
    assert 100 <= int(config["kms_timeout_ms"]) <= 10_000


# --- Pod hardening of the Jobs ----------------------------------------------------------------


def check_locked_down(workload: dict) -> None:
    """Non-root, no privilege escalation, no capabilities, read-only root filesystem, no Kubernetes
    API token, resource requests and a memory limit."""
    name = f"{workload['kind']} {workload['metadata']['name']}"
    pod = pod_spec(workload)
    assert pod["restartPolicy"] == "Never", name
    assert pod["automountServiceAccountToken"] is False, name
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field), f"{name}: {field}"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True, name
    # Numeric: runAsNonRoot cannot check an image whose USER is a name (curlimages/curl's is).
    assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0, name
    assert isinstance(security["runAsGroup"], int) and security["runAsGroup"] > 0, name
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert not pod.get("initContainers") and not pod.get("ephemeralContainers"), name
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert not sc.get("privileged"), name
        assert sc.get("runAsUser", 1) != 0 and sc.get("runAsNonRoot", True) is True, name
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
        assert resources["limits"]["memory"], name
        for mount in container.get("volumeMounts", []):
            assert mount["readOnly"] is True, f"{name}: {mount['name']}"
    for volume in pod.get("volumes", []):
        # ConfigMaps, and Secrets by name (the migration Job's CA bundle): nothing from the node.
        assert set(volume) in ({"name", "configMap"}, {"name", "secret"}), f"{name}: volume {volume['name']}"


@pytest.mark.parametrize("env", ENVS)
def test_job_pods_are_locked_down(apps, rendered, env):
    check_locked_down(one(rendered[f"overlays/{env}/migrate"], "Job"))
    for job in ADMIN_CRONJOBS:
        check_locked_down(one(apps[env], "CronJob", job.name))


# --- The CronJobs that call the app's batched admin routes ----------------------------------
# Spin's key-value API sets no TTLs, and nothing but POST /api/v1/admin/kv/sweep deletes the
# sess:{id} and vt:{id} entries of sessions that ended: license-edge-kv-sweep calls it every hour.
# Nothing but POST /api/v1/admin/prune deletes old sessions and audit events from PostgreSQL:
# license-edge-prune calls it every day with the retention of the overlay's config.env. Both run
# deploy/base/admin-batch.sh with what deploy/base/admin-cronjob-common.yaml gives both;
# test_admin_batch.py runs that script against a stand-in for the app.

JOBS = pytest.mark.parametrize("job", ADMIN_CRONJOBS, ids=str)


def admin_container(docs: list[dict], job: AdminCronJob) -> dict:
    (container,) = pod_spec(one(docs, "CronJob", job.name))["containers"]
    return container


def container_env(container: dict) -> dict[str, dict]:
    out = {}
    for var in container.get("env", []):
        assert var["name"] not in out, f"{var['name']} set twice"
        out[var["name"]] = var
    return out


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_renders_and_validates(apps, env, job):
    docs = apps[env]
    cronjob = one(docs, "CronJob", job.name)
    assert cronjob["apiVersion"] == "batch/v1"
    try:
        kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{env}: CronJob {job.name}: {err.message}")
    # In the SpinApps' namespace, so the Service's short name resolves to the admin Service.
    assert cronjob["metadata"]["namespace"] == spinapp(docs, ADMIN_APP)["metadata"]["namespace"]
    # The script it mounts is rendered alongside (kustomize gave the ConfigMap a hashed name),
    # and it is admin-batch.sh.
    pod = pod_spec(cronjob)
    (volume,) = pod["volumes"]
    data = one(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    assert data == {ADMIN_SCRIPT.name: ADMIN_SCRIPT.read_text()}
    assert pod_labels(cronjob)["app.kubernetes.io/component"] == job.component


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_runs_on_schedule_one_at_a_time_and_every_run_ends(apps, env, job):
    cronjob = one(apps[env], "CronJob", job.name)
    spec = cronjob["spec"]
    assert re.fullmatch(job.schedule, spec["schedule"]), spec["schedule"]
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert not spec.get("suspend")
    assert 0 < spec["startingDeadlineSeconds"] < job.period
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 10
    assert 1 <= spec["failedJobsHistoryLimit"] <= 10
    job_spec = spec["jobTemplate"]["spec"]
    # A run ends before the next slot, whatever the app does.
    assert 0 < job_spec["activeDeadlineSeconds"] < job.period
    assert 0 <= job_spec["backoffLimit"] <= 5
    container = admin_container(apps[env], job)
    env_vars = container_env(container)
    # At most 500 calls a run, and no call waits longer than the run may last.
    max_calls = int(env_vars["LE_ADMIN_MAX_CALLS"]["value"])
    assert 1 <= max_calls <= 500
    call_timeout = int(env_vars["LE_ADMIN_CALL_TIMEOUT"]["value"])
    assert 0 < call_timeout < job_spec["activeDeadlineSeconds"]
    # Exit status 2 (a 400, a 401, a 404: retrying cannot cure it) fails the Job without
    # retries; a drained node's pod does not count as a failure.
    rules = job_spec["podFailurePolicy"]["rules"]
    fail_job = [r for r in rules if r["action"] == "FailJob"]
    assert [r["onExitCodes"] for r in fail_job] == [
        {"containerName": container["name"], "operator": "In", "values": [ADMIN_EXIT_NO_RETRY]}
    ]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert [r["onPodConditions"] for r in ignore] == [
        [{"type": "DisruptionTarget", "status": "True"}]
    ]


@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjobs_differ_only_in_name_schedule_route_and_body(apps, env):
    # The conventions (image, script, token, hardening, bounds, retries) are written once, in
    # admin-cronjob-common.yaml: the rendered CronJobs agree on everything else.
    def shared(job: AdminCronJob) -> dict:
        cronjob = json.loads(json.dumps(one(apps[env], "CronJob", job.name)))
        spec = cronjob["spec"]
        del cronjob["metadata"], spec["schedule"], spec["jobTemplate"]["metadata"]
        template = spec["jobTemplate"]["spec"]["template"]
        del template["metadata"]
        (container,) = template["spec"]["containers"]
        own = {"LE_ADMIN_PATH", "LE_ADMIN_BODY"} | {
            f"LE_PRUNE_{field.upper()}" for _, field in job.body_from_config or ()
        }
        container["env"] = [e for e in container["env"] if e["name"] not in own]
        return cronjob

    first, *others = ADMIN_CRONJOBS
    for job in others:
        assert shared(job) == shared(first), job.name


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_calls_its_admin_route_on_the_admin_service(apps, env, job):
    docs = apps[env]
    env_vars = container_env(admin_container(docs, job))
    url = urlsplit(env_vars["LE_APP_URL"]["value"])
    # Plain http to the Service the operator creates for the admin SpinApp, named after it
    # (port 80), as the probes reach the app inside the cluster. The public Service's pods serve
    # no admin route.
    assert url.scheme == "http", url
    assert url.hostname == spinapp(docs, ADMIN_APP)["metadata"]["name"] == ADMIN_APP, url
    assert url.port in (None, APP_PORT), url
    assert url.path in ("", "/") and not url.query and not url.username, url
    # admin-batch.sh appends LE_ADMIN_PATH and POSTs to it (test_admin_batch.py runs it); that
    # path is the admin component's, and the API answers POST there and nothing else.
    assert env_vars["LE_ADMIN_PATH"] == {"name": "LE_ADMIN_PATH", "value": job.path}
    route = served_by(job.path, SPINAPP_COMPONENTS[ADMIN_APP])
    assert route is not None and route.component == "admin", route
    assert route.route == ADMIN_ROUTE, route
    assert served_by(job.path, SPINAPP_COMPONENTS[PUBLIC_APP]) is None
    operations = openapi()["paths"].get(job.path)
    assert operations is not None, f"openapi.json does not document {job.path}"
    assert set(operations) == {"post"}, sorted(operations)
    # And the body the CronJob sends is one the route accepts (the prune's retention, in days),
    # or the route asks for none.
    post = openapi_post(job.path)
    body = container_environment(docs, admin_container(docs, job)).get("LE_ADMIN_BODY")
    if body is None:
        assert not post.get("requestBody", {}).get("required"), post["requestBody"]
    else:
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        errors = [e.message for e in openapi_validator(schema).iter_errors(json.loads(body))]
        assert not errors, (body, errors)


@pytest.mark.parametrize("env", ENVS)
def test_prune_body_carries_the_retention_of_config_env(apps, env):
    docs = apps[env]
    config = read_env_file(OVERLAYS / env / "config.env")
    container = admin_container(docs, PRUNE)
    # The ConfigMap keys come from the same hashed ConfigMap the SpinApp reads, so a changed
    # config.env renames it and reaches the CronJob on the next `kubectl apply -k`.
    config_maps = {
        e["valueFrom"]["configMapKeyRef"]["name"]
        for e in container["env"]
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    for app in SPINAPP_COMPONENTS:
        ref = variables(docs, app)["db_host"]["valueFrom"]["configMapKeyRef"]
        assert config_maps == {ref["name"]}, app
    # The body, as the kubelet makes it: ConfigMap keys read and $(NAME) expanded in order.
    environment = container_environment(docs, container)
    body = json.loads(environment["LE_ADMIN_BODY"])
    assert body == {field: int(config[key]) for key, field in PRUNE.body_from_config}, body
    assert set(body) == {"sessions_older_than_days", "audit_older_than_days"}
    for value in body.values():
        assert type(value) is int and value in RETENTION_DAYS, body
    # The sweep sends nothing.
    assert "LE_ADMIN_BODY" not in container_env(admin_container(docs, SWEEP))


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_takes_the_admin_token_from_the_apps_secret(apps, env, job):
    docs = apps[env]
    container = admin_container(docs, job)
    token = container_env(container)["ADMIN_TOKEN"]
    # From the very Secret key the admin SpinApp's admin_token variable reads, and nothing else.
    assert set(token) == {"name", "valueFrom"}, token
    assert token["valueFrom"] == variables(docs, ADMIN_APP)["admin_token"]["valueFrom"]
    ref = token["valueFrom"]["secretKeyRef"]
    assert set(ref) == {"name", "key"}, ref  # not optional: no token, no pod
    assert ref["key"] in secret_templates()[ref["name"]]["stringData"]
    # Never on the command line: the command names the script only.
    assert "args" not in container and "envFrom" not in container
    command = " ".join(container["command"])
    assert "TOKEN" not in command.upper() and "Bearer" not in command and "$" not in command
    # And no other variable refers to it (a $(ADMIN_TOKEN) in a value would copy it).
    for var in container["env"]:
        assert "ADMIN_TOKEN" not in var.get("value", ""), var


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_pods_are_the_ones_its_network_policy_selects(apps, env, job):
    cronjob = one(apps[env], "CronJob", job.name)
    policy = one(apps[env], "NetworkPolicy", ADMIN_BATCH_POLICY)
    assert selects(policy["spec"]["podSelector"], pod_labels(cronjob))
    assert cronjob["metadata"]["namespace"] == policy["metadata"]["namespace"]
    # And no other pod of the app's: not the SpinApps', not the migration Job's.
    for app in SPINAPP_COMPONENTS:
        assert not selects(policy["spec"]["podSelector"], app_pod(apps[env], app).labels)
    assert not selects(
        policy["spec"]["podSelector"],
        {"app.kubernetes.io/name": "license-edge", "app.kubernetes.io/component": "migrate"},
    )


# What the NetworkPolicies allow, evaluated the way Kubernetes does for pods (matchLabels and
# matchExpressions, peers in the policy's namespace or by namespace labels, numbered and named
# ports). ipBlock peers are for addresses outside the cluster and never match a pod here.


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict
    port_names: tuple[tuple[str, int], ...] = ()
    # Its namespace's labels besides kubernetes.io/metadata.name, which every namespace carries.
    namespace_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outside:
    """An address outside the cluster (a client on the internet or the internal network): only
    ipBlock peers match it."""

    ip: str


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and key in labels and labels[key] in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def policy_types(policy: dict) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def peer_matches(peer: dict, policy_namespace: str, pod: Pod | Outside) -> bool:
    if isinstance(pod, Outside):
        if "ipBlock" not in peer:
            return False
        try:
            cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        except ValueError:  # the placeholder: matches no address
            return False
        ip = ipaddress.ip_address(pod.ip)
        excepted = any(ip in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", []))
        return ip in cidr and not excepted
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selects(
            peer["namespaceSelector"],
            {"kubernetes.io/metadata.name": pod.namespace, **dict(pod.namespace_labels)},
        )
    else:
        namespace_ok = pod.namespace == policy_namespace
    return namespace_ok and selects(peer.get("podSelector", {}), pod.labels)


def port_matches(ports: list[dict] | None, protocol: str, port: int, dst: Pod) -> bool:
    if not ports:
        return True
    names = {number: name for name, number in dst.port_names}
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        want = p.get("port")
        if want is None or (isinstance(want, str) and want == names.get(port)):
            return True
        if isinstance(want, int) and want <= port <= p.get("endPort", want):
            return True
    return False


def admits(docs: list[dict], pod: Pod, direction: str, other: Pod, protocol, port, dst) -> bool:
    """Whether the policies selecting `pod` let its traffic in `direction` with `other` pass."""
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and p["metadata"].get("namespace") == pod.namespace
        and direction in policy_types(p)
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if (
                not peers or any(peer_matches(x, policy["metadata"]["namespace"], other) for x in peers)
            ) and port_matches(rule.get("ports"), protocol, port, dst):
                return True
    return False


def allowed(docs: list[dict], src: Pod | Outside, dst: Pod, protocol: str, port: int) -> bool:
    """Whether a connection from src (a pod, or an address outside the cluster) to pod dst's port
    passes every NetworkPolicy."""
    egress = isinstance(src, Outside) or admits(docs, src, "Egress", dst, protocol, port, dst)
    return egress and admits(docs, dst, "Ingress", src, protocol, port, dst)


def app_pod(docs: list[dict], name: str = PUBLIC_APP) -> Pod:
    """A serving pod of a SpinApp, labelled as spin-operator v0.6.1 labels them."""
    app = spinapp(docs, name)
    name = app["metadata"]["name"]
    labels = {
        "core.spinkube.dev/app-name": name,
        f"core.spinkube.dev/app.{name}.status": "ready",
        **app["spec"].get("podLabels", {}),
    }
    return Pod(app["metadata"]["namespace"], labels, ((APP_PORT_NAME, APP_PORT),))


KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})


def operator_service_selector(app: str) -> dict:
    """The selector of the Service spin-operator v0.6.1 creates for SpinApp `app`
    (internal/controller/service.go): its ready pods."""
    return {"matchLabels": {f"core.spinkube.dev/app.{app}.status": "ready"}}


@pytest.mark.parametrize("env", ENVS)
def test_each_service_sends_to_its_own_spinapps_pods_only(apps, env):
    # Service license-edge (the one to expose) never reaches an admin pod, and
    # license-edge-admin never a public one.
    for app in SPINAPP_COMPONENTS:
        for other in SPINAPP_COMPONENTS:
            pod = app_pod(apps[env], other)
            assert selects(operator_service_selector(app), pod.labels) == (app == other)


@JOBS
@pytest.mark.parametrize("env", ENVS)
def test_admin_cronjob_pods_may_reach_the_admin_app_and_dns_and_nothing_else(apps, env, job):
    docs = apps[env]
    admin = app_pod(docs, ADMIN_APP)
    caller = Pod(admin.namespace, pod_labels(one(docs, "CronJob", job.name)))
    # The admin pods' port, whatever policy selects either side; and DNS for the Service's name.
    assert allowed(docs, caller, admin, "TCP", APP_PORT)
    assert allowed(docs, caller, KUBE_DNS, "UDP", 53) and allowed(docs, caller, KUBE_DNS, "TCP", 53)
    # Nothing else: another port of the app, the public pods, another pod, the admin pods in
    # another namespace, PostgreSQL's port on another pod.
    assert not allowed(docs, caller, admin, "TCP", 8080)
    assert not allowed(docs, caller, app_pod(docs, PUBLIC_APP), "TCP", APP_PORT)
    assert not allowed(docs, caller, Pod(admin.namespace, {"app": "other"}), "TCP", APP_PORT)
    elsewhere = Pod("elsewhere", admin.labels, admin.port_names)
    assert not allowed(docs, caller, elsewhere, "TCP", APP_PORT)
    assert not allowed(docs, caller, Pod(admin.namespace, {"app": "postgres"}), "TCP", 5432)


# Sources of connections to the app's pods, by where they come from.
INTERNET = Outside("203.0.113.9")
PLACEHOLDER_CIDR = "REPLACE_ME"


@pytest.mark.parametrize("env", ENVS)
def test_admin_pods_admit_only_the_internal_sources(apps, env):
    docs = apps[env]
    admin, public = app_pod(docs, ADMIN_APP), app_pod(docs, PUBLIC_APP)
    namespace = admin.namespace
    key, value = ADMIN_ACCESS_LABEL
    # Every ingress policy that selects the admin pods admits only these peers, on the app's
    # port only (so no rule admits any source).
    selecting = [
        p for p in docs
        if p["kind"] == "NetworkPolicy" and "Ingress" in policy_types(p)
        and p["metadata"]["namespace"] == namespace
        and selects(p["spec"]["podSelector"], admin.labels)
    ]  # fmt: skip
    assert [p["metadata"]["name"] for p in selecting] == [ADMIN_INGRESS_POLICY]
    config = read_env_file(OVERLAYS / env / "config.env")
    for peers, ports in ingress_rules(selecting[0]):
        assert peers, "a rule without peers admits every source"
        assert ports == APP_PORT_ONLY
        for peer in peers:
            assert peer in (
                ADMIN_CRONJOB_PEER,
                {"namespaceSelector": {"matchLabels": {key: value}}},
                {"ipBlock": {"cidr": config[ADMIN_CIDR_KEY]}},
            ), peer
    # Admitted: the sweep and prune CronJobs' pods; any pod of a namespace labelled for it.
    for job in ADMIN_CRONJOBS:
        caller = Pod(namespace, pod_labels(one(docs, "CronJob", job.name)))
        assert admits(docs, admin, "Ingress", caller, "TCP", APP_PORT, admin), job.name
    ops = Pod("ops", {"app": "console"}, namespace_labels=(ADMIN_ACCESS_LABEL,))
    assert admits(docs, admin, "Ingress", ops, "TCP", APP_PORT, admin)
    # Refused: the internet, another pod of the namespace (the public app's, the migration
    # Job's, any other), a pod of an unlabelled namespace, another port.
    assert not admits(docs, admin, "Ingress", INTERNET, "TCP", APP_PORT, admin)
    assert not admits(docs, admin, "Ingress", public, "TCP", APP_PORT, admin)
    migrate = Pod(namespace, {"app.kubernetes.io/name": "license-edge",
                              "app.kubernetes.io/component": "migrate"})  # fmt: skip
    unlabelled = Pod("ops", {"app": "console"})
    for pod in (migrate, Pod(namespace, {"app": "other"}), unlabelled):
        assert not admits(docs, admin, "Ingress", pod, "TCP", APP_PORT, admin), pod
    # The label on the namespace, not on the pod, is what counts.
    labelled_pod = Pod("ops", {ADMIN_ACCESS_LABEL[0]: ADMIN_ACCESS_LABEL[1]})
    assert not admits(docs, admin, "Ingress", labelled_pod, "TCP", APP_PORT, admin)
    sweep = Pod(namespace, pod_labels(one(docs, "CronJob", SWEEP.name)))
    assert not admits(docs, admin, "Ingress", sweep, "TCP", 8080, admin)
    assert not admits(docs, admin, "Ingress", ops, "TCP", 8080, admin)
    # The public pods admit anyone, on the app's port only.
    assert admits(docs, public, "Ingress", INTERNET, "TCP", APP_PORT, public)
    anyone = Pod("default", {"app": "other"})
    assert admits(docs, public, "Ingress", anyone, "TCP", APP_PORT, public)
    assert not admits(docs, public, "Ingress", INTERNET, "TCP", 8080, public)


@pytest.mark.parametrize("env", ENVS)
def test_pods_of_a_namespace_labelled_for_admin_access_reach_the_admin_pods(apps, env):
    docs = apps[env]
    admin = app_pod(docs, ADMIN_APP)
    key, value = ADMIN_ACCESS_LABEL
    policy = one(docs, "NetworkPolicy", ADMIN_INGRESS_POLICY)
    (peer,) = policy["spec"]["ingress"][1]["from"]
    # The namespace rule matches a namespace by its admin-access label and nothing else.
    assert selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "ops", key: value})
    assert not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "ops"})
    assert "podSelector" not in peer  # every pod of such a namespace
    # And the admin Service is the one a labelled namespace's pod would call: the operator's
    # Service of license-edge-admin, port 80 to the pods' http-app.
    assert selects(operator_service_selector(ADMIN_APP), admin.labels)


@JOBS
def test_network_policy_evaluation_follows_kubernetes(apps, job):
    # A guard on the evaluator the tests above rely on: an ingress policy on the admin pods that
    # does not admit the CronJob's pods must be caught, and one that admits them must pass.
    docs = apps[ENVS[0]]
    admin = app_pod(docs, ADMIN_APP)
    # The rendered documents without their ingress policies, to try others in their place.
    bare = [
        d for d in docs if not (d["kind"] == "NetworkPolicy" and "Ingress" in policy_types(d))
    ]
    sweep = Pod(admin.namespace, pod_labels(one(docs, "CronJob", job.name)))

    def ingress(*peers: dict, ports=None) -> dict:
        rule = {"from": list(peers)} | ({"ports": ports} if ports else {})
        return {
            "kind": "NetworkPolicy",
            "metadata": {"name": "app-ingress", "namespace": admin.namespace},
            "spec": {
                "podSelector": {"matchLabels": {"core.spinkube.dev/app-name": ADMIN_APP}},
                "policyTypes": ["Ingress"],
                "ingress": [rule],
            },
        }

    load_balancer = {"ipBlock": {"cidr": "35.191.0.0/16"}}
    kv_sweep = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": job.component}}}
    by_expression = {
        "podSelector": {
            "matchExpressions": [
                {
                    "key": "app.kubernetes.io/component",
                    "operator": "In",
                    "values": [j.component for j in ADMIN_CRONJOBS],
                }
            ]
        }
    }
    someone_else = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "migrate"}}}
    assert allowed(bare, sweep, admin, "TCP", APP_PORT)  # no ingress policy: anything goes
    assert not allowed(bare + [ingress(someone_else)], sweep, admin, "TCP", APP_PORT)
    assert not allowed(bare + [ingress(load_balancer)], sweep, admin, "TCP", APP_PORT)
    assert allowed(bare + [ingress(load_balancer, kv_sweep)], sweep, admin, "TCP", APP_PORT)
    assert allowed(bare + [ingress(by_expression)], sweep, admin, "TCP", APP_PORT)
    named = ingress(kv_sweep, ports=[{"protocol": "TCP", "port": APP_PORT_NAME}])
    assert allowed(bare + [named], sweep, admin, "TCP", APP_PORT)
    other_port = ingress(kv_sweep, ports=[{"protocol": "TCP", "port": 8080}])
    assert not allowed(bare + [other_port], sweep, admin, "TCP", APP_PORT)
    # Two policies selecting a pod admit the union of their rules.
    assert allowed(bare + [ingress(someone_else), ingress(kv_sweep)], sweep, admin, "TCP", APP_PORT)
    # ipBlock peers match addresses outside the cluster, never pods; except carves out.
    assert allowed(bare + [ingress(load_balancer)], Outside("35.191.1.2"), admin, "TCP", APP_PORT)
    assert not allowed(bare + [ingress(load_balancer)], Outside("35.192.1.2"), admin, "TCP", 80)
    carved = {"ipBlock": {"cidr": "35.191.0.0/16", "except": ["35.191.1.0/24"]}}
    assert not allowed(bare + [ingress(carved)], Outside("35.191.1.2"), admin, "TCP", APP_PORT)
    assert not allowed(bare + [ingress(kv_sweep)], Outside("35.191.1.2"), admin, "TCP", APP_PORT)
    placeholder = {"ipBlock": {"cidr": PLACEHOLDER_CIDR}}
    assert not allowed(bare + [ingress(placeholder)], INTERNET, admin, "TCP", APP_PORT)
    # A namespaceSelector peer matches pods of other namespaces by their namespace's labels.
    by_name = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    assert allowed(bare + [ingress(by_name)], Pod("ops", {}), admin, "TCP", APP_PORT)
    assert not allowed(bare + [ingress(by_name)], Pod("dev", {}), admin, "TCP", APP_PORT)
    by_label = {"namespaceSelector": {"matchLabels": {"team": "ops"}}}
    team = Pod("dev", {}, namespace_labels=(("team", "ops"),))
    assert allowed(bare + [ingress(by_label)], team, admin, "TCP", APP_PORT)
    assert not allowed(bare + [ingress(by_label)], Pod("dev", {}), admin, "TCP", APP_PORT)
    # Egress: without its policy the pod could go anywhere; with it, only where it says.
    without = [d for d in bare if d["metadata"]["name"] != ADMIN_BATCH_POLICY]
    assert allowed(without, sweep, Pod(admin.namespace, {"app": "other"}), "TCP", APP_PORT)
    assert not allowed(bare, sweep, Pod(admin.namespace, {"app": "other"}), "TCP", APP_PORT)


# --- deploy/README.md -------------------------------------------------------------------------


def readme_commands() -> list[str]:
    """The commands in deploy/README.md's indented code blocks, continuation lines joined."""
    commands: list[str] = []
    current: list[str] = []
    for line in README.read_text().splitlines():
        if not line.startswith("    ") and not current:
            continue
        text = line.strip()
        continued = text.endswith("\\")
        current.append(text.rstrip("\\").strip())
        if not continued:
            commands.append(" ".join(current))
            current = []
    return commands


def test_readme_memorystore_never_evicts():
    # An evicted sess: end marker would bring an ended session back at the edge: an instance
    # must refuse writes when full rather than evict. OpenTofu creates it (deploy/infra, checked
    # by tests/infra); any instance the README still creates by hand must say the same.
    creates = [c for c in readme_commands() if c.startswith("gcloud redis instances create ")]
    for create in creates:
        settings = {}
        for arg in shlex.split(create, comments=True):
            if arg.startswith("--redis-config="):
                for pair in arg.split("=", 1)[1].split(","):
                    key, _, value = pair.partition("=")
                    settings[key] = value
        assert settings.get("maxmemory-policy") == "noeviction", create
    # And no other command (an update, say) sets another policy.
    for command in readme_commands():
        for policy in re.findall(r"maxmemory-policy=([A-Za-z_-]+)", command):
            assert policy == "noeviction", command


def test_readme_runs_each_admin_cronjob_that_exists(apps):
    runs = [c for c in readme_commands() if "create job --from=cronjob/" in c]
    named = {re.search(r"--from=cronjob/(\S+)", c).group(1) for c in runs}
    names = {job.name for job in ADMIN_CRONJOBS}
    # Every CronJob it runs by hand exists, and it says how to run each by hand.
    assert named == names, (sorted(named), sorted(names))
    for env in ENVS:
        for job in ADMIN_CRONJOBS:
            one(apps[env], "CronJob", job.name)
    # Each run of the script from a workstation names a route a CronJob calls, and there is one
    # for each.
    scripted = [c for c in readme_commands() if ADMIN_SCRIPT.name in c and "LE_ADMIN_PATH=" in c]
    paths = {re.search(r"LE_ADMIN_PATH=(\S+)", c).group(1) for c in scripted}
    assert paths == {job.path for job in ADMIN_CRONJOBS}, sorted(paths)


def test_readme_lists_both_admin_cronjobs_and_the_retention_settings():
    text = README.read_text()
    for job in ADMIN_CRONJOBS:
        assert job.name in text and job.path in text, job.name
    for name in ("kv-sweep-cronjob.yaml", "prune-cronjob.yaml", "admin-cronjob-common.yaml"):
        assert name in text, name
    assert ADMIN_SCRIPT.name in text and ADMIN_BATCH_POLICY in text
    assert "noeviction" in text
    # The retention: its keys, its defaults, where it lives; and why a prune, not partitions.
    for key, _ in PRUNE.body_from_config:
        assert f"`{key}`" in text, key
    assert "config.env" in text and "90" in text and "365" in text
    assert "partition" in text
    # The Contents list every section, the prune's included.
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    contents = re.findall(r"^- \[(.+?)\]\(#", text, flags=re.M)
    assert contents == headings[1:], (contents, headings)


def test_readme_says_how_to_expose_the_public_api_and_keep_admin_internal():
    text = README.read_text()
    assert "### The admin API, internal only" in text
    names = (PUBLIC_APP, ADMIN_APP, PUBLIC_INGRESS_POLICY, ADMIN_INGRESS_POLICY)
    for name in names + ("spinapp-admin.yaml",):
        assert name in text, name
    assert f"`{ADMIN_CIDR_KEY}`" in text
    # The namespace label it tells the operator to set is the one the policy admits.
    key, value = ADMIN_ACCESS_LABEL
    labels = [c for c in readme_commands() if c.startswith("kubectl label namespace ")]
    assert any(c.split()[-1] == f"{key}={value}" for c in labels), labels
    # Every port-forward names one of the two Services; every run of the admin script from a
    # workstation goes to the admin Service's port-forward.
    forwards = {}
    for command in readme_commands():
        match = re.search(r"port-forward svc/(\S+) (\d+):80\b", command)
        if match:
            assert match[1] in SPINAPP_COMPONENTS, command
            assert forwards.setdefault(match[2], match[1]) == match[1], command
    assert set(forwards.values()) == set(SPINAPP_COMPONENTS), forwards
    scripted = [c for c in readme_commands() if ADMIN_SCRIPT.name in c and "LE_APP_URL=" in c]
    assert scripted
    for command in scripted:
        port = urlsplit(re.search(r"LE_APP_URL=(\S+)", command)[1]).port
        assert forwards.get(str(port)) == ADMIN_APP, command


def test_every_rollout_waits_for_both_spinapps():
    # By hand (deploy/README.md) and in the pipeline (deploy.yml): both Deployments, each time.
    workflow = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    for text in ("\n".join(readme_commands()), workflow):
        waits = re.findall(r"rollout status deployment/(\S+)", text)
        assert waits, text[:200]
        assert sorted(set(waits)) == sorted(SPINAPP_COMPONENTS), waits
        assert waits.count(PUBLIC_APP) == waits.count(ADMIN_APP), waits
