"""The script of the CronJobs that call the app's batched admin routes (deploy/base/admin-batch.sh:
the hourly key-value sweep and the daily prune), taken from the ConfigMap the CronJobs mount as
the overlays render it, run for real with curl and each CronJob's environment (its ConfigMap keys
read and its $(NAME) references expanded as the kubelet does) against a stand-in for the app on
127.0.0.1 that records every request and answers as each test says.

In the CronJobs the script runs under the curlimages/curl image's busybox sh; here it runs under
/bin/sh (dash on Debian) with the machine's curl. It is written to POSIX sh for that reason."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy_support import (
    ADMIN_CRONJOBS,
    ADMIN_EXIT_NO_RETRY,
    ADMIN_SCRIPT,
    DEPLOY,
    PRUNE,
    SWEEP,
    AdminCronJob,
    container_environment,
    environments,
    one,
    openapi_post,
    openapi_validator,
    pod_spec,
    read_env_file,
    render,
)

ENVS = environments()
# What the app is given as its admin token, and what the Authorization header must carry.
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
RETRY = 1  # admin-batch.sh's exit status for what a later try may cure
HANG = "hang"


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        raise AssertionError(
            "curl is not installed: the admin CronJobs' script calls the app with it "
            "(Debian/Ubuntu: apt-get install curl)."
        )
    return path


def answer(job: AdminCronJob, n: int, more: bool) -> dict:
    """What the job's route answers when a call handled n rows."""
    if job is SWEEP:
        return {
            "sessions_swept": n,
            "entries_deleted": 2 * n,
            "swept_until": "2026-11-02T10:00:00Z" if n else None,
            "more": more,
            "seat_entries_deleted": n // 2,
        }
    assert job is PRUNE
    return {"sessions_deleted": n, "audit_events_deleted": n // 4, "more": more}


@pytest.mark.parametrize("job", ADMIN_CRONJOBS, ids=str)
def test_the_stand_in_answers_as_openapi_json_says(job):
    # answer() gives what the app's route documents, so the script is tried on the real
    # shape of an answer.
    schema = openapi_post(job.path)["responses"]["200"]["content"]["application/json"]["schema"]
    validator = openapi_validator(schema)
    for n, more in ((0, False), (7, False), (4000, True)):
        body = answer(job, n, more)
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (body, errors)


def text(body: dict, compact: bool = True) -> str:
    """An answer as serde_json writes it (compact), or with spaces."""
    return json.dumps(body, separators=(",", ":") if compact else None)


def totals(answers: list[dict]) -> str:
    """The totals admin-batch.sh logs: each whole-number field, summed, in first-seen order."""
    sums: dict[str, int] = {}
    for body in answers:
        for key, value in body.items():
            if isinstance(value, int) and not isinstance(value, bool):
                sums[key] = sums.get(key, 0) + value
    return " ".join(f"{k}={v}" for k, v in sums.items())


# --- The stand-in for the app -----------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeApp:
    """Answers the n-th request with answers[n] (the last one again once they run out): a
    (status, body) pair, or HANG to answer nothing for 30 seconds."""

    def __init__(self, answers: list):
        self.answers = answers
        self.seen: list[Seen] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    n = len(app.seen)
                    app.seen.append(Seen(self.command, self.path, headers, body))
                reply = app.answers[min(n, len(app.answers) - 1)]
                if reply == HANG:
                    time.sleep(30)
                    return
                status, text = reply
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = answer

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeApp:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- The script as deployed -------------------------------------------------------------------


@dataclass
class Deployed:
    job: AdminCronJob
    script: Path
    env: dict[str, str]  # the CronJob container's environment, Secrets aside
    body: dict | None  # the JSON body it must POST (None: none)


def deployed_script(docs: list[dict], job: AdminCronJob) -> tuple[str, dict, dict]:
    """The script text the CronJob runs, its container and its pod spec."""
    pod = pod_spec(one(docs, "CronJob", job.name))
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"]}
    data = one(docs, "ConfigMap", volumes[mount["name"]])["data"]
    (file,) = data
    assert container["command"] == ["/bin/sh", f"{mount['mountPath']}/{file}"]
    return data[file], container, pod


def expected_body(job: AdminCronJob, config: dict[str, str]) -> dict | None:
    """The body the job must POST with the overlay's config.env."""
    if job.body_from_config is None:
        return None
    return {field: int(config[key]) for key, field in job.body_from_config}


def deploy(docs: list[dict], job: AdminCronJob, config: dict[str, str], folder: Path) -> Deployed:
    script, container, _ = deployed_script(docs, job)
    path = folder / "admin-batch.sh"
    path.write_text(script)
    return Deployed(job, path, container_environment(docs, container), expected_body(job, config))


@pytest.mark.parametrize("job", ADMIN_CRONJOBS, ids=str)
@pytest.mark.parametrize("env", ENVS)
def test_the_cronjob_runs_this_script(apps, env, job):
    script, container, _ = deployed_script(apps[env], job)
    assert script == ADMIN_SCRIPT.read_text()
    env_vars = {e["name"] for e in container["env"]}
    assert {
        "ADMIN_TOKEN", "LE_APP_URL", "LE_ADMIN_PATH", "LE_ADMIN_MAX_CALLS", "LE_ADMIN_CALL_TIMEOUT"
    } <= env_vars  # fmt: skip
    assert ("LE_ADMIN_BODY" in env_vars) == (job.body_from_config is not None)


@pytest.fixture(scope="module", params=ADMIN_CRONJOBS, ids=str)
def deployed(request, apps, tmp_path_factory) -> Deployed:
    """The job as production renders it, with production's config.env."""
    config = read_env_file(DEPLOY / "overlays" / "production" / "config.env")
    folder = tmp_path_factory.mktemp(request.param.component)
    return deploy(apps["production"], request.param, config, folder)


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    argv: str  # the command line of every curl, tr and sed the script started


def call(deployed: Deployed, app_url: str, tmp_path: Path, **settings: str | None) -> Run:
    """Runs the script with the CronJob's environment, the app at app_url, and settings on top
    (None removes a variable). curl, tr and sed are wrapped so that each records its command line
    first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    argv_log = tmp_path / "argv.log"
    argv_log.write_text("")
    for name in ("curl", "tr", "sed"):
        real = curl() if name == "curl" else shutil.which(name)
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "{argv_log}"\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **deployed.env,
        "LE_APP_URL": app_url,
        "ADMIN_TOKEN": TOKEN,
        **settings,
    }
    env = {k: v for k, v in env.items() if v is not None}
    result = subprocess.run(
        ["sh", str(deployed.script)], env=env, capture_output=True, text=True, timeout=60
    )
    return Run(result.returncode, result.stdout, result.stderr, argv_log.read_text())


def check_calls(app: FakeApp, run: Run, calls: int, deployed: Deployed) -> None:
    """Each call was a POST to exactly the job's route with the bearer token and the job's body
    (JSON, or nothing), and the token reached no command line and no log."""
    assert len(app.seen) == calls, (len(app.seen), run.stdout, run.stderr)
    for seen in app.seen:
        assert seen.method == "POST", seen
        assert seen.path == deployed.job.path, seen
        assert seen.headers["authorization"] == f"Bearer {TOKEN}", seen
        assert seen.headers["content-type"] == "application/json", seen
        if deployed.body is None:
            assert seen.body == b"" and seen.headers.get("content-length") == "0", seen
        else:
            assert json.loads(seen.body) == deployed.body, seen
    assert sum(line.startswith("curl ") for line in run.argv.splitlines()) == calls, run.argv
    assert TOKEN not in run.argv, "the token was on a command line"
    assert TOKEN not in run.stdout + run.stderr, "the token was logged"


# --- Runs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compact", [True, False])
def test_it_posts_to_its_route_until_more_is_false(deployed, tmp_path, compact):
    job = deployed.job
    bodies = [answer(job, 4000, True)] * 2 + [answer(job, 7, False)]
    with FakeApp([(200, text(b, compact)) for b in bodies]) as app:
        run = call(deployed, app.url, tmp_path)
    assert run.status == 0, run.stderr
    check_calls(app, run, 3, deployed)
    assert f"{job.component}: done in 3 call(s): {totals(bodies)}" in run.stdout, run.stdout


@pytest.mark.parametrize("env", ENVS)
def test_the_prune_posts_the_retention_of_config_env(apps, env, tmp_path):
    # What the overlay's config.env says is what the app receives, as JSON numbers (the route
    # answers 400 to anything else).
    config = read_env_file(DEPLOY / "overlays" / env / "config.env")
    deployed = deploy(apps[env], PRUNE, config, tmp_path)
    with FakeApp([(200, text(answer(PRUNE, 0, False)))]) as app:
        run = call(deployed, app.url, tmp_path)
    assert run.status == 0, run.stderr
    check_calls(app, run, 1, deployed)
    sent = json.loads(app.seen[0].body)
    assert sent == {
        "sessions_older_than_days": int(config["prune_sessions_older_than_days"]),
        "audit_older_than_days": int(config["prune_audit_older_than_days"]),
    }, sent
    assert all(type(v) is int for v in sent.values()), sent
    # The run's log says what retention it used.
    assert app.seen[0].body.decode() in run.stdout, run.stdout


@pytest.mark.parametrize("env", ENVS)
def test_a_changed_retention_reaches_the_app(env, tmp_path):
    # An operator edits config.env and nothing else: the next run sends the new numbers.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    config_path = copy / "overlays" / env / "config.env"
    lines = [
        line
        for line in config_path.read_text().splitlines()
        if not line.startswith(("prune_sessions_older_than_days=", "prune_audit_older_than_days="))
    ]
    config_path.write_text(
        "\n".join(lines)
        + "\nprune_sessions_older_than_days=30\nprune_audit_older_than_days=730\n"
    )
    deployed = deploy(render(copy / "overlays" / env), PRUNE, read_env_file(config_path), tmp_path)
    assert deployed.body == {"sessions_older_than_days": 30, "audit_older_than_days": 730}
    with FakeApp([(200, text(answer(PRUNE, 0, False)))]) as app:
        run = call(deployed, app.url, tmp_path)
    assert run.status == 0, run.stderr
    check_calls(app, run, 1, deployed)


def test_a_secret_made_from_a_file_with_a_newline_still_authorizes(deployed, tmp_path):
    # `kubectl create secret --from-file` keeps a trailing newline; the app ignores it too.
    with FakeApp([(200, text(answer(deployed.job, 0, False)))]) as app:
        run = call(deployed, app.url + "/", tmp_path, ADMIN_TOKEN=f"{TOKEN}\n")
    assert run.status == 0, run.stderr
    check_calls(app, run, 1, deployed)


def test_a_run_ends_after_its_call_budget(deployed, tmp_path):
    # The app always has more: the run stops after LE_ADMIN_MAX_CALLS calls, successfully (the
    # next run goes on). The CronJobs' own budget (at most 500) is checked in test_manifests.py;
    # a small one keeps this quick.
    budget = 5
    with FakeApp([(200, text(answer(deployed.job, 4000, True)))]) as app:
        run = call(deployed, app.url, tmp_path, LE_ADMIN_MAX_CALLS=str(budget))
    assert run.status == 0, run.stderr
    check_calls(app, run, budget, deployed)
    assert f"stopped after {budget} calls" in run.stdout
    assert totals([answer(deployed.job, 4000, True)] * budget) in run.stdout


@pytest.mark.parametrize(
    "status, body, exit_status",
    [
        (503, '{"error":{"code":"database_unavailable"}}', RETRY),
        (503, '{"error":{"code":"key_value_unavailable"}}', RETRY),
        (500, '{"error":{"code":"internal"}}', RETRY),
        (502, "", RETRY),
        (400, '{"error":{"code":"invalid_request"}}', ADMIN_EXIT_NO_RETRY),
        (401, '{"error":{"code":"unauthorized"}}', ADMIN_EXIT_NO_RETRY),
        (404, '{"error":{"code":"not_found"}}', ADMIN_EXIT_NO_RETRY),
        (200, '{"status":"healthy"}', ADMIN_EXIT_NO_RETRY),
    ],
)
def test_a_failed_call_ends_the_run_with_the_status_the_cronjob_expects(
    deployed, tmp_path, status, body, exit_status
):
    with FakeApp([(200, text(answer(deployed.job, 4000, True))), (status, body)]) as app:
        run = call(deployed, app.url, tmp_path)
    assert run.status == exit_status, (run.stdout, run.stderr)
    check_calls(app, run, 2, deployed)
    assert f"call 2: {status}" in run.stderr or "call 2: 200 without" in run.stderr


def test_a_hanging_call_times_out(deployed, tmp_path):
    # On real Spin a key-value call hangs while Redis is down: the call must give up.
    with FakeApp([HANG]) as app:
        started = time.monotonic()
        run = call(deployed, app.url, tmp_path, LE_ADMIN_CALL_TIMEOUT="1")
        took = time.monotonic() - started
    assert run.status == RETRY, (run.stdout, run.stderr)
    assert took < 15, took
    check_calls(app, run, 1, deployed)


def test_the_cronjobs_call_timeout_reaches_curl(deployed, tmp_path):
    with FakeApp([(200, text(answer(deployed.job, 0, False)))]) as app:
        run = call(deployed, app.url, tmp_path)
    assert f"--max-time {deployed.env['LE_ADMIN_CALL_TIMEOUT']} " in run.argv, run.argv


def test_no_app_listening_is_worth_a_retry(deployed, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = call(deployed, f"http://127.0.0.1:{port}", tmp_path)
    assert run.status == RETRY, (run.stdout, run.stderr)
    assert "no answer" in run.stderr


@pytest.mark.parametrize(
    "settings",
    [
        {"ADMIN_TOKEN": ""},
        {"ADMIN_TOKEN": " \n"},
        {"LE_ADMIN_MAX_CALLS": "0"},
        {"LE_ADMIN_MAX_CALLS": "many"},
        {"LE_ADMIN_CALL_TIMEOUT": "soon"},
        {"LE_ADMIN_PATH": None},
        {"LE_ADMIN_PATH": "/api/v1/admin/"},
        {"LE_ADMIN_PATH": "/api/v1/licenses/validate"},
        {"LE_ADMIN_PATH": "/api/v1/admin/prune?x=1"},
        {"LE_ADMIN_BODY": "sessions_older_than_days=90"},
        {"LE_ADMIN_BODY": "@/etc/passwd"},
        # What the kubelet leaves when a $(NAME) is not defined before the body.
        {"LE_ADMIN_BODY": '{"sessions_older_than_days":$(LE_PRUNE_SESSIONS_OLDER_THAN_DAYS)}'},
    ],
    ids=repr,
)
def test_bad_settings_make_no_call(deployed, tmp_path, settings):
    with FakeApp([(200, text(answer(deployed.job, 0, False)))]) as app:
        run = call(deployed, app.url, tmp_path, **settings)
    assert run.status == ADMIN_EXIT_NO_RETRY, (run.stdout, run.stderr)
    assert app.seen == []
