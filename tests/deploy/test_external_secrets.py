"""deploy/external-secrets: External Secrets Operator makes, from Secret Manager, the Secrets the
app already reads (same names, same keys as deploy/secrets/*.yaml), from the secrets
deploy/infra creates, as the reader deploy/infra binds. The ExternalSecrets and the SecretStore
are validated against ESO v2.9.0's CRD schemas (tests/deploy/schemas), unknown fields refused."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from deploy_support import (
    DEPLOY,
    OVERLAYS,
    PLACEHOLDER,
    environments,
    one,
    read_env_file,
    render,
    secret_templates,
)

ENVS = environments()
ESO_API = "external-secrets.io/v1"
SCHEMAS = Path(__file__).parent / "schemas" / "external-secrets-v2.9.0.json"
EXTERNAL_SECRETS = DEPLOY / "external-secrets"
INFRA = DEPLOY / "infra"
# Public certificates, not a secret: made with kubectl from the instances' CAs (section 5).
NOT_SYNCED = {"license-edge-ca"}
# The migrator's Secret Manager value is one JSON object of these members.
MIGRATOR_KEYS = {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"}
READER = "license-edge-secrets"


def strict(schema: dict) -> dict:
    """The schema with unknown fields refused wherever it names the fields, as the API server's
    strict field validation (kubectl apply's default) does."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # metadata is the API server's to check (kubernetes-validate does it for core objects).
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft7Validator]:
    doc = json.loads(SCHEMAS.read_text())
    assert doc["apiVersion"] == ESO_API
    return {kind: jsonschema.Draft7Validator(strict(s)) for kind, s in doc["schemas"].items()}


def eso_objects(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["apiVersion"].startswith("external-secrets.io/")]


def external_secrets(docs: list[dict]) -> dict[str, dict]:
    return {d["spec"]["target"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}


def remote_keys(es: dict) -> list[str]:
    keys = [d["remoteRef"]["key"] for d in es["spec"].get("data", [])]
    keys += [d["extract"]["key"] for d in es["spec"].get("dataFrom", [])]
    return keys


def infra_secret_names() -> set[str]:
    """The short names of the Secret Manager secrets modules/secrets creates (its default map)."""
    text = (INFRA / "modules" / "secrets" / "variables.tf").read_text()
    block = re.search(r'variable "secrets" \{.*?default = \{(.*?)\n  \}', text, re.S)
    assert block, "modules/secrets has no default secrets map"
    return set(re.findall(r'^\s*"([a-z-]+)"\s*=', block[1], re.M))


@pytest.mark.parametrize("folder", ["external-secrets", *(f"overlays/{env}" for env in ENVS)])
def test_eso_objects_validate_against_the_crd_schemas(rendered, validators, folder):
    objects = eso_objects(rendered[folder])
    assert {d["kind"] for d in objects} == {"ExternalSecret", "SecretStore"}
    for doc in objects:
        assert doc["apiVersion"] == ESO_API, doc["apiVersion"]
        errors = sorted(validators[doc["kind"]].iter_errors(doc), key=str)
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_the_schema_check_refuses_unknown_and_wrong_fields(rendered, validators):
    es = next(d for d in rendered["external-secrets"] if d["kind"] == "ExternalSecret")
    typo = copy.deepcopy(es)
    typo["spec"]["target"]["creationPolcy"] = "Owner"
    assert list(validators["ExternalSecret"].iter_errors(typo))
    wrong = copy.deepcopy(es)
    wrong["spec"]["target"]["creationPolicy"] = "Always"
    assert list(validators["ExternalSecret"].iter_errors(wrong))
    store = next(d for d in rendered["external-secrets"] if d["kind"] == "SecretStore")
    no_account = copy.deepcopy(store)
    del no_account["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]["serviceAccountRef"]
    assert list(validators["SecretStore"].iter_errors(no_account))


@pytest.mark.parametrize("env", ENVS)
def test_eso_makes_every_secret_the_app_reads_with_the_same_keys(apps, env):
    templates = secret_templates()
    synced = external_secrets(apps[env])
    assert set(synced) == set(templates) - NOT_SYNCED
    for name, es in synced.items():
        keys = set(templates[name]["stringData"])
        if "dataFrom" in es["spec"]:
            assert name == "license-edge-migrator" and keys == MIGRATOR_KEYS, name
        else:
            assert {d["secretKey"] for d in es["spec"]["data"]} == keys, name
        target = es["spec"]["target"]
        assert target["creationPolicy"] == "Owner" and target["deletionPolicy"] == "Retain", name
        assert es["spec"]["refreshInterval"], name
        for ref in es["spec"].get("data", []) + es["spec"].get("dataFrom", []):
            assert ref.get("remoteRef", ref.get("extract"))["version"] == "latest", name


@pytest.mark.parametrize("env", ENVS)
def test_eso_reads_the_secrets_deploy_infra_creates_in_this_environment(apps, env):
    synced = external_secrets(apps[env])
    keys = [k for es in synced.values() for k in remote_keys(es)]
    assert len(keys) == len(set(keys)) == len(synced)
    # modules/secrets names each secret license-edge-<environment>-<name>.
    expected = {f"license-edge-{env}-{name}" for name in infra_secret_names()}
    assert set(keys) == expected, set(keys) ^ expected


@pytest.mark.parametrize("env", ENVS)
def test_the_secret_store_reads_as_the_service_account_infra_binds(apps, env):
    docs = apps[env]
    config = read_env_file(OVERLAYS / env / "config.env")
    store = one(docs, "SecretStore", "gcp-secret-manager")
    for es in external_secrets(docs).values():
        assert es["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "gcp-secret-manager"}
        assert es["metadata"]["namespace"] == store["metadata"]["namespace"]
    gcpsm = store["spec"]["provider"]["gcpsm"]
    assert gcpsm["projectID"] == config["gcp_project"]
    # Workload Identity: no key file, no Secret with credentials.
    assert set(gcpsm["auth"]) == {"workloadIdentity"}
    account = gcpsm["auth"]["workloadIdentity"]["serviceAccountRef"]["name"]
    assert account == READER
    reader = one(docs, "ServiceAccount", account)
    assert reader["automountServiceAccountToken"] is False
    assert reader["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == config["secrets_reader_sa"]
    # deploy/infra binds exactly NAMESPACE/license-edge-secrets of this environment.
    main = (INFRA / "environments" / env / "main.tf").read_text()
    namespace = re.search(r'^\s*namespace\s*=\s*"([^"]+)"', main, re.M)[1]
    assert namespace == store["metadata"]["namespace"]
    assert 'reader_kubernetes_service_account = "${local.namespace}/' + READER + '"' in main
    # Until render-overlay.py fills them in, the values are the placeholder, never a guess.
    for key in ("gcp_project", "secrets_reader_sa"):
        assert config[key] == PLACEHOLDER or "@" in config[key] or re.fullmatch(r"[a-z][a-z0-9-]+", config[key])


def test_no_eso_object_holds_a_secret_value(rendered):
    for docs in rendered.values():
        for doc in eso_objects(docs):
            text = json.dumps(doc)
            assert "-----BEGIN" not in text and "postgres://" not in text, doc["metadata"]["name"]
            if doc["kind"] == "SecretStore":
                assert "secretRef" not in doc["spec"]["provider"]["gcpsm"]["auth"]


@pytest.mark.parametrize("env", ENVS)
def test_migrate_sh_can_apply_the_eso_objects_alone(apps, env):
    # Before the first rollout the migration Job's Secret does not exist; migrate.sh applies the
    # overlay's objects that its label selector picks: exactly the ESO objects and the reader.
    script = (DEPLOY / "migrate.sh").read_text()
    selector = re.search(r'^secrets_selector="([^"=]+)=([^"]+)"$', script, re.M)
    assert selector and 'kubectl apply -l "$secrets_selector"' in script
    key, value = selector[1], selector[2]
    picked = {(d["kind"], d["metadata"]["name"]) for d in apps[env] if d["metadata"].get("labels", {}).get(key) == value}
    expected = {(d["kind"], d["metadata"]["name"]) for d in eso_objects(apps[env])} | {("ServiceAccount", READER)}
    assert picked == expected
    assert ("ExternalSecret", "license-edge-migrator") in picked
