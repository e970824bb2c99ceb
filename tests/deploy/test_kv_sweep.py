"""The key-value sweep CronJob's script (deploy/base/kv-sweep.sh), taken from the ConfigMap the
CronJob mounts as the overlays render it, run for real with curl and the CronJob's settings
against a stand-in for the app on 127.0.0.1 that records every request and answers as each test
says.

In the CronJob the script runs under the curlimages/curl image's busybox sh; here it runs under
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
    DEPLOY,
    SWEEP_CRONJOB,
    SWEEP_EXIT_NO_RETRY,
    SWEEP_PATH,
    environments,
    one,
    pod_spec,
)

SCRIPT = DEPLOY / "base" / "kv-sweep.sh"
ENVS = environments()
# What the app is given as its admin token, and what the Authorization header must carry.
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
RETRY = 1  # kv-sweep.sh's exit status for what a later try may cure
HANG = "hang"


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        raise AssertionError(
            "curl is not installed: the sweep's script calls the app with it "
            "(Debian/Ubuntu: apt-get install curl)."
        )
    return path


def sweep_body(sessions: int, more: bool, compact: bool = True) -> str:
    """The app's answer (compact, as serde_json writes it, or with spaces)."""
    body = {
        "sessions_swept": sessions,
        "entries_deleted": 2 * sessions,
        "swept_until": "2026-11-02T10:00:00Z" if sessions else None,
        "more": more,
    }
    return json.dumps(body, separators=(",", ":") if compact else None)


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
    script: Path
    env: dict[str, str]  # the CronJob container's literal environment


def deployed_script(docs: list[dict]) -> tuple[str, dict, dict]:
    """The script text the CronJob runs, its container and its pod spec."""
    pod = pod_spec(one(docs, "CronJob", SWEEP_CRONJOB))
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"]}
    data = one(docs, "ConfigMap", volumes[mount["name"]])["data"]
    (file,) = data
    assert container["command"] == ["/bin/sh", f"{mount['mountPath']}/{file}"]
    return data[file], container, pod


@pytest.mark.parametrize("env", ENVS)
def test_the_cronjob_runs_this_script(apps, env):
    text, container, _ = deployed_script(apps[env])
    assert text == SCRIPT.read_text()
    env_vars = {e["name"] for e in container["env"]}
    assert {"ADMIN_TOKEN", "LE_APP_URL", "LE_SWEEP_MAX_CALLS", "LE_SWEEP_CALL_TIMEOUT"} <= env_vars


@pytest.fixture(scope="module")
def deployed(apps, tmp_path_factory) -> Deployed:
    text, container, _ = deployed_script(apps["production"])
    path = tmp_path_factory.mktemp("kv-sweep") / "kv-sweep.sh"
    path.write_text(text)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return Deployed(path, env)


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    argv: str  # the command line of every curl, tr and sed the script started


def sweep(deployed: Deployed, app_url: str, tmp_path: Path, **settings: str) -> Run:
    """Runs the script with the CronJob's environment, the app at app_url, and settings on top.
    curl, tr and sed are wrapped so that each records its command line first."""
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
    result = subprocess.run(
        ["sh", str(deployed.script)], env=env, capture_output=True, text=True, timeout=60
    )
    return Run(result.returncode, result.stdout, result.stderr, argv_log.read_text())


def check_calls(app: FakeApp, run: Run, calls: int) -> None:
    """Each call was a POST of nothing to exactly the sweep route with the bearer token, and the
    token reached no command line and no log."""
    assert len(app.seen) == calls, (len(app.seen), run.stdout, run.stderr)
    for seen in app.seen:
        assert seen.method == "POST", seen
        assert seen.path == SWEEP_PATH, seen
        assert seen.headers["authorization"] == f"Bearer {TOKEN}", seen
        assert seen.body == b"" and seen.headers.get("content-length") == "0", seen
    assert sum(line.startswith("curl ") for line in run.argv.splitlines()) == calls, run.argv
    assert TOKEN not in run.argv, "the token was on a command line"
    assert TOKEN not in run.stdout + run.stderr, "the token was logged"


# --- Runs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compact", [True, False])
def test_it_posts_to_the_sweep_route_until_more_is_false(deployed, tmp_path, compact):
    answers = [(200, sweep_body(4000, True, compact))] * 2 + [(200, sweep_body(7, False, compact))]
    with FakeApp(answers) as app:
        run = sweep(deployed, app.url, tmp_path)
    assert run.status == 0, run.stderr
    check_calls(app, run, 3)
    assert "done: 8007 session(s) swept in 3 call(s)" in run.stdout


def test_a_secret_made_from_a_file_with_a_newline_still_authorizes(deployed, tmp_path):
    # `kubectl create secret --from-file` keeps a trailing newline; the app ignores it too.
    with FakeApp([(200, sweep_body(0, False))]) as app:
        run = sweep(deployed, app.url + "/", tmp_path, ADMIN_TOKEN=f"{TOKEN}\n")
    assert run.status == 0, run.stderr
    check_calls(app, run, 1)


def test_a_run_ends_after_its_call_budget(deployed, tmp_path):
    # The app always has more: the run stops after LE_SWEEP_MAX_CALLS calls, successfully (the
    # next run goes on from where the app recorded this one stopped). The CronJob's own budget
    # (at most 500) is checked in test_manifests.py; a small one keeps this quick.
    budget = 5
    with FakeApp([(200, sweep_body(4000, True))]) as app:
        run = sweep(deployed, app.url, tmp_path, LE_SWEEP_MAX_CALLS=str(budget))
    assert run.status == 0, run.stderr
    check_calls(app, run, budget)
    assert f"stopped after {budget} calls" in run.stdout


@pytest.mark.parametrize(
    "status, body, exit_status",
    [
        (503, '{"error":{"code":"key_value_unavailable"}}', RETRY),
        (500, '{"error":{"code":"internal"}}', RETRY),
        (502, "", RETRY),
        (401, '{"error":{"code":"unauthorized"}}', SWEEP_EXIT_NO_RETRY),
        (404, '{"error":{"code":"not_found"}}', SWEEP_EXIT_NO_RETRY),
        (200, '{"status":"healthy"}', SWEEP_EXIT_NO_RETRY),
    ],
)
def test_a_failed_call_ends_the_run_with_the_status_the_cronjob_expects(
    deployed, tmp_path, status, body, exit_status
):
    with FakeApp([(200, sweep_body(4000, True)), (status, body)]) as app:
        run = sweep(deployed, app.url, tmp_path)
    assert run.status == exit_status, (run.stdout, run.stderr)
    check_calls(app, run, 2)
    assert f"call 2: {status}" in run.stderr or "call 2: 200 without" in run.stderr


def test_a_hanging_call_times_out(deployed, tmp_path):
    # On real Spin a key-value call hangs while Redis is down: the call must give up.
    with FakeApp([HANG]) as app:
        started = time.monotonic()
        run = sweep(deployed, app.url, tmp_path, LE_SWEEP_CALL_TIMEOUT="1")
        took = time.monotonic() - started
    assert run.status == RETRY, (run.stdout, run.stderr)
    assert took < 15, took
    check_calls(app, run, 1)


def test_the_cronjobs_call_timeout_reaches_curl(deployed, tmp_path):
    with FakeApp([(200, sweep_body(0, False))]) as app:
        run = sweep(deployed, app.url, tmp_path)
    assert f"--max-time {deployed.env['LE_SWEEP_CALL_TIMEOUT']} " in run.argv, run.argv


def test_no_app_listening_is_worth_a_retry(deployed, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = sweep(deployed, f"http://127.0.0.1:{port}", tmp_path)
    assert run.status == RETRY, (run.stdout, run.stderr)
    assert "no answer" in run.stderr


@pytest.mark.parametrize(
    "settings",
    [
        {"ADMIN_TOKEN": ""},
        {"ADMIN_TOKEN": " \n"},
        {"LE_SWEEP_MAX_CALLS": "0"},
        {"LE_SWEEP_MAX_CALLS": "many"},
        {"LE_SWEEP_CALL_TIMEOUT": "soon"},
    ],
)
def test_bad_settings_make_no_call(deployed, tmp_path, settings):
    with FakeApp([(200, sweep_body(0, False))]) as app:
        run = sweep(deployed, app.url, tmp_path, **settings)
    assert run.status == SWEEP_EXIT_NO_RETRY, (run.stdout, run.stderr)
    assert app.seen == []
