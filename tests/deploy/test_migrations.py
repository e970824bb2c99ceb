"""The migration Job: what deploy/migrate.sh renders, and its script (run-migrations.sh) run for
real with psql against the throwaway PostgreSQL that scripts/test.sh starts on 127.0.0.1.

In the Job the script runs under the postgres Alpine image's busybox sh; here it runs under
/bin/sh (dash on Debian). It is written to POSIX sh for that reason."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import kubernetes_validate
import pytest

from deploy_support import (
    DEPLOY,
    K8S_VERSION,
    OVERLAYS,
    ROOT,
    environments,
    one,
    parse_docs,
    render,
    run,
    secret_templates,
)

RUNNER = DEPLOY / "base" / "migrate" / "run-migrations.sh"
MIGRATIONS = ROOT / "migrations"
ENVS = environments()


# --- What deploy/migrate.sh renders -----------------------------------------------------------


def migrate_render(env: str) -> list[dict]:
    return parse_docs(run([str(DEPLOY / "migrate.sh"), env, "--render"]).stdout)


@pytest.mark.parametrize("env", ENVS)
def test_migrate_sh_renders_every_migration_file_and_the_job(env):
    docs = migrate_render(env)
    namespace = re.search(
        r"^namespace: *(\S+)", (OVERLAYS / env / "migrate" / "kustomization.yaml").read_text(), re.M
    ).group(1)
    migrations = one(docs, "ConfigMap", "license-edge-migrations")
    files = {p.name: p.read_text() for p in MIGRATIONS.glob("*.sql")}
    assert (migrations.get("data") or {}) == files
    job = one(docs, "Job", "license-edge-migrate")
    for doc in docs:
        assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    # The Job reads the folder the script mounts, and runs the script the runner ConfigMap holds.
    assert volumes["migrations"] == "license-edge-migrations"
    assert mounts["migrations"] == env_vars["MIGRATIONS_DIR"]
    runner = one(docs, "ConfigMap", volumes["scripts"])
    assert runner["data"]["run-migrations.sh"] == RUNNER.read_text()
    assert container["command"] == ["/bin/sh", f"{mounts['scripts']}/run-migrations.sh"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    # It connects as the owner role from the migrator Secret, whose template has every key.
    (source,) = container["envFrom"]
    keys = set(secret_templates()[source["secretRef"]["name"]]["stringData"])
    assert {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"} <= keys
    # It verifies the server: verify-full against the CA bundle the app's executor mounts too.
    assert env_vars["PGSSLMODE"] == "verify-full"
    ca_dir, _, ca_file = env_vars["PGSSLROOTCERT"].rpartition("/")
    (ca,) = [v for v in pod["volumes"] if "secret" in v]
    assert mounts[ca["name"]] == ca_dir
    assert not ca["secret"].get("optional"), "without the bundle the Job must not run"
    assert ca["secret"]["items"] == [{"key": "ca-certificates.crt", "path": ca_file}]
    executor = one(render(OVERLAYS / env), "SpinAppExecutor")
    assert ca["secret"]["secretName"] == executor["spec"]["deploymentConfig"]["caCertSecret"]


def test_migrate_sh_refuses_a_wrong_environment():
    result = subprocess.run(
        [str(DEPLOY / "migrate.sh"), "nowhere", "--render"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Usage" in result.stderr


def test_runner_shares_table_and_lock_with_licensectl_migrate():
    # `licensectl migrate` (crates/migrate) and the Job must be interchangeable: same record
    # table, same advisory lock, so either may run first and they never run a file twice.
    rust = (ROOT / "crates" / "migrate" / "src" / "lib.rs").read_text()
    shell = RUNNER.read_text()
    key = int(re.search(r"const LOCK_KEY: i64 = (0x[0-9a-f_]+);", rust).group(1).replace("_", ""), 16)
    assert f"lock_key={key}\n" in shell
    table = re.search(r"CREATE TABLE IF NOT EXISTS schema_migrations \([^)]*\)", rust).group(0)
    assert table in shell


# --- run-migrations.sh against PostgreSQL -----------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> dict[str, str]:
    """libpq settings for the throwaway server; nothing inherited from the caller's PG*."""
    port = os.environ.get("LE_TEST_PG_PORT")
    assert port, "LE_TEST_PG_PORT is not set: run the tests with scripts/test.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    pg_bin = os.environ.get("LE_TEST_PG_BIN", "")
    env.update(
        PGHOST="127.0.0.1",
        PGPORT=port,
        PGUSER="postgres",
        PGDATABASE="postgres",
        PGCONNECT_TIMEOUT="10",
        PATH=f"{pg_bin}:{env.get('PATH', '')}" if pg_bin else env.get("PATH", ""),
    )
    return env


_counter = iter(range(1_000_000))


def fresh_database(pg: dict[str, str]) -> dict[str, str]:
    name = f"le_deploy_{os.getpid()}_{next(_counter)}"
    sql(pg, f"CREATE DATABASE {name}")
    return {**pg, "PGDATABASE": name}


def sql(env: dict[str, str], query: str) -> str:
    return subprocess.run(
        ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def migrate(env: dict[str, str], folder: Path, app_role: str | None = None):
    extra = {"MIGRATIONS_DIR": str(folder)}
    if app_role:
        extra["LE_APP_ROLE"] = app_role
    return subprocess.run(
        ["sh", str(RUNNER)], env={**env, **extra}, capture_output=True, text=True, timeout=120
    )


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def migration(version: str, body: str) -> str:
    """A file following the convention: one transaction that records itself."""
    return (
        f"BEGIN;\n{body}\nCREATE TABLE IF NOT EXISTS schema_migrations "
        "(version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL);\n"
        f"INSERT INTO schema_migrations (version, applied_at) VALUES ('{version}', 0) "
        "ON CONFLICT (version) DO NOTHING;\nCOMMIT;\n"
    )


def recorded(env: dict[str, str]) -> list[str]:
    out = sql(env, "SELECT version FROM schema_migrations ORDER BY version")
    return out.splitlines() if out else []


def test_repository_migrations_apply_once_and_rerun_cleanly(pg):
    db = fresh_database(pg)
    first = migrate(db, MIGRATIONS)
    assert first.returncode == 0, first.stderr
    versions = sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
    assert recorded(db) == versions
    for version in versions:
        assert f"applying {version}" in first.stdout
    again = migrate(db, MIGRATIONS)
    assert again.returncode == 0, again.stderr
    assert "applying" not in again.stdout
    for version in versions:
        assert f"{version} already applied" in again.stdout
    assert "warning" not in first.stderr + again.stderr, first.stderr + again.stderr


def test_app_role_gets_row_access_to_app_tables_and_nothing_on_the_record(pg, tmp_path):
    db = fresh_database(pg)
    role = f"le_deploy_app_{os.getpid()}"
    sql(pg, f"DROP ROLE IF EXISTS {role}")
    sql(pg, f"CREATE ROLE {role} LOGIN")
    folder = write(
        tmp_path / "m",
        {
            "0001_init.sql": migration(
                "0001_init",
                "CREATE TABLE IF NOT EXISTS things (id BIGSERIAL PRIMARY KEY, name TEXT);",
            )
        },
    )
    result = migrate(db, folder, app_role=role)
    assert result.returncode == 0, result.stderr
    grants = sql(
        db,
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
        f"FROM information_schema.role_table_grants WHERE grantee = '{role}' GROUP BY 1",
    )
    assert grants == "things|DELETE,INSERT,SELECT,UPDATE"
    assert sql(db, f"SELECT has_sequence_privilege('{role}', 'things_id_seq', 'USAGE')") == "t"
    # As the app: rows yes, DDL and the record table no.
    as_app = {**db, "PGUSER": role}
    sql(as_app, "INSERT INTO things (name) VALUES ('a')")
    for forbidden in ("SELECT * FROM schema_migrations", "CREATE TABLE nope (id INT)"):
        denied = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", forbidden],
            env=as_app, capture_output=True, text=True,
        )  # fmt: skip
        assert denied.returncode != 0 and "permission denied" in denied.stderr, forbidden


def test_a_failing_file_stops_the_run_and_leaves_nothing_of_itself(pg, tmp_path):
    db = fresh_database(pg)
    files = {
        "0001_one.sql": migration("0001_one", "CREATE TABLE IF NOT EXISTS one (id INT);"),
        "0002_two.sql": migration(
            "0002_two", "CREATE TABLE IF NOT EXISTS two (id INT);\nSELECT no_such_column;"
        ),
        "0003_three.sql": migration("0003_three", "CREATE TABLE IF NOT EXISTS three (id INT);"),
    }
    folder = write(tmp_path / "m", files)
    result = migrate(db, folder)
    assert result.returncode != 0
    assert "no_such_column" in result.stderr and "a migration failed" in result.stderr
    assert recorded(db) == ["0001_one"]
    assert sql(db, "SELECT to_regclass('two') IS NULL AND to_regclass('three') IS NULL") == "t"
    # Fixed (it never applied anywhere, so it may still change): the next run picks up there.
    write(folder, {"0002_two.sql": migration("0002_two", "CREATE TABLE IF NOT EXISTS two (id INT);")})
    result = migrate(db, folder)
    assert result.returncode == 0, result.stderr
    assert recorded(db) == ["0001_one", "0002_two", "0003_three"]
    assert "0001_one already applied" in result.stdout


@pytest.mark.parametrize(
    "files, message",
    [
        ({"1_init.sql": "SELECT 1;"}, "NNNN_name.sql"),
        ({"0001_Init.sql": "SELECT 1;"}, "NNNN_name.sql"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, "two migration files are numbered 0001"),
    ],
)
def test_badly_named_files_are_refused_before_anything_runs(pg, tmp_path, files, message):
    db = fresh_database(pg)
    result = migrate(db, write(tmp_path / "m", files))
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert sql(db, "SELECT to_regclass('schema_migrations') IS NULL") == "t"


def test_a_file_that_does_not_record_itself_is_reported(pg, tmp_path):
    db = fresh_database(pg)
    folder = write(tmp_path / "m", {"0001_bare.sql": "CREATE TABLE IF NOT EXISTS bare (id INT);"})
    result = migrate(db, folder)
    assert result.returncode == 0, result.stderr
    assert "0001_bare did not record itself" in result.stderr


def test_concurrent_runners_apply_each_file_once(pg, tmp_path):
    db = fresh_database(pg)
    sql(db, "CREATE TABLE hits (n INT)")
    # Not idempotent on purpose: a second application would show as a second row.
    folder = write(
        tmp_path / "m",
        {"0001_slow.sql": migration("0001_slow", "INSERT INTO hits VALUES (1);\nSELECT pg_sleep(1);")},
    )
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(migrate(db, folder))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert sql(db, "SELECT count(*) FROM hits") == "1"
    assert sum("applying 0001_slow" in r.stdout for r in results) == 1
