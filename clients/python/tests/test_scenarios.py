"""The client scenarios of tests/clients/scenarios.json, driven with this package against the
real app (the test host, real PostgreSQL and Redis). The Rust test
``python_client_scenarios`` (tests/tests/clients.rs) starts the world and its control API and
runs this module with LE_CLIENT_CONTROL set; the same table drives the Rust crate there."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import requests

from license_edge import (Forbidden, NoSeatsAvailable, RateLimited, Seat, State, TokenRefused,
                          Unreachable)

CONTROL = os.environ.get("LE_CLIENT_CONTROL", "")
TABLE = Path(os.environ.get("LE_CLIENT_SCENARIOS", Path(__file__).resolve().parents[3]
                            / "tests/clients/scenarios.json"))
SCENARIOS = {s["name"]: s for s in json.loads(TABLE.read_text())["scenarios"]}

pytestmark = pytest.mark.skipif(
    not CONTROL, reason="needs the world of tests/tests/clients.rs (LE_CLIENT_CONTROL)")


class World:
    """The control API of tests/client_world.rs."""

    def call(self, method: str, path: str, body: Any = None) -> Dict[str, Any]:
        r = requests.request(method, CONTROL + path, json=body, timeout=60)
        r.raise_for_status()
        return r.json()

    @property
    def url(self) -> str:
        return self.call("GET", "/server")["url"]

    @property
    def product(self) -> str:
        """The product the licenses are for, as tokens name it: ``{organization_id}/{code}``."""
        return self.call("GET", "/server")["product"]

    def license(self, terms: Dict[str, Any]) -> Dict[str, str]:
        return self.call("POST", "/license", terms)

    def stop(self) -> None:
        self.call("POST", "/server/stop")

    def start(self) -> None:
        self.call("POST", "/server/start")

    def rotate(self) -> None:
        self.call("POST", "/server/rotate")

    def live(self, license_id: str) -> int:
        return self.call("GET", f"/live/{license_id}")["live"]

    def fake(self, machine_id: str) -> str:
        return self.call("POST", "/fake", {"machine_id": machine_id})["url"]

    def jwks_fetches(self) -> int:
        return self.call("GET", "/fake/jwks_fetches")["count"]


def eventually(limit: float, check: Callable[[], bool]) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def seat(world: World, key: str, machine: str, **options: Any) -> Seat:
    return Seat.acquire(world.url, key, world.product, machine, timeout=2, **options)


def acquire_renew_release(world: World, s: Dict[str, Any]) -> None:
    lic = world.license(s["license"])
    with Seat(world.url, lic["key"], world.product, "machine-a", timeout=2) as held:
        claims = held.claims
        assert claims["sub"] == lic["id"]
        assert claims["plan"] == s["expect"]["plan"]
        assert claims["features"] == s["expect"]["features"]
        assert held.status().state is State.ONLINE
        assert world.live(lic["id"]) == 1
        exp = claims["exp"]
        for _ in range(s["renewals"]):
            assert eventually(5, lambda: held.claims["exp"] > exp), "renewed"
            exp = held.claims["exp"]
        assert held.session_id == claims["sid"]
        assert held.failures == 0
    assert held.status().state is State.RELEASED
    assert world.live(lic["id"]) == 0, "leaving the with-block released the seat"

    other = seat(world, lic["key"], "machine-b")
    assert world.live(lic["id"]) == 1
    other.release()
    assert world.live(lic["id"]) == 0, "release freed the seat"


def no_seats_available(world: World, s: Dict[str, Any]) -> None:
    lic = world.license(s["license"])
    held = seat(world, lic["key"], "machine-a")
    try:
        with pytest.raises(NoSeatsAvailable) as refused:
            seat(world, lic["key"], "machine-b")
        assert refused.value.max_seats == 1
        assert refused.value.active_seats == 1
        assert refused.value.next_available_hint and "T" in refused.value.next_available_hint
    finally:
        held.release()


def refusals(world: World, s: Dict[str, Any]) -> None:
    suspended = world.license(s["suspended"])
    with pytest.raises(Forbidden) as forbidden:
        seat(world, suspended["key"], "m")
    assert forbidden.value.code == "license_suspended"
    limited = world.license(s["rate_limited"])
    # One attempt a minute: of three quick attempts, at least the third is refused even when
    # a minute's window turns between two of them.
    held = []
    try:
        with pytest.raises(RateLimited) as limited_error:
            for machine in ("m1", "m2", "m3"):
                held.append(seat(world, limited["key"], machine))
        assert limited_error.value.retry_after is not None
        assert 0 < limited_error.value.retry_after <= 60
        assert limited_error.value.transient
    finally:
        for h in held:
            h.release()


def offline_grace_then_back_online(world: World, s: Dict[str, Any]) -> None:
    lic = world.license(s["license"])
    n = s["failures_before_offline"]
    grace = s["license"]["offline_grace_seconds"]
    held = seat(world, lic["key"], "machine-a", failures_before_offline=n,
                clock_leeway=s["clock_leeway"], max_backoff=s["max_backoff"])
    try:
        assert held.claims["offline_grace"] == grace
        world.stop()
        assert eventually(10, lambda: held.status().state is State.OFFLINE), held.status()
        assert held.failures >= n
        assert isinstance(held.last_error, Unreachable)
        exp = held.claims["exp"]
        assert held.status().until == exp + grace  # the server's grace, nothing longer
        last_licensed = [time.time()]

        def lapsed() -> bool:
            before = time.time()  # read before the check: a licensed answer proves it
            if held.licensed:
                last_licensed[0] = before
                return False
            return True

        assert eventually(grace + 5, lapsed)
        assert held.status().state is State.LAPSED
        assert exp + grace - 1.5 <= last_licensed[0] < exp + grace, (last_licensed, exp)

        world.start()
        assert eventually(10, lambda: held.status().state is State.ONLINE), held.status()
        assert held.failures == 0
        assert world.live(lic["id"]) == 1
    finally:
        world.start()
        held.release()
    assert world.live(lic["id"]) == 0


def offline_start_from_cache(world: World, s: Dict[str, Any]) -> None:
    lic = world.license(s["license"])
    with tempfile.TemporaryDirectory() as cache:
        options = dict(cache_dir=cache, clock_leeway=s["clock_leeway"],
                       max_backoff=s["max_backoff"])
        first = seat(world, lic["key"], "machine-a", **options)
        session = first.session_id
        files = sorted(os.listdir(cache))
        assert len(files) == 2, files
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(cache, name)).st_mode) == 0o600, name

        world.stop()
        with pytest.raises(Unreachable):
            first.release()
        again = seat(world, lic["key"], "machine-a", **options)
        try:
            assert again.status().state is State.OFFLINE, again.status()
            assert again.licensed
            assert again.session_id == session
            world.start()
            assert eventually(10, lambda: again.status().state is State.ONLINE), again.status()
            assert again.session_id == session, "the same session, renewed"
            assert world.live(lic["id"]) == 1
        finally:
            world.start()
            again.release()


def key_rotation(world: World, s: Dict[str, Any]) -> None:
    lic = world.license(s["license"])
    with tempfile.TemporaryDirectory() as cache:
        with Seat(world.url, lic["key"], world.product, "machine-a", timeout=2,
                  cache_dir=cache) as held:
            old = kid_of(held.token)
            assert old != s["new_kid"]
            world.rotate()
            assert eventually(10, lambda: kid_of(held.token) == s["new_kid"]), \
                (held.status(), held.last_error)
            assert held.status().state is State.ONLINE
            jwks = Path(cache, "jwks.json").read_text()
            assert s["new_kid"] in jwks and old in jwks


def tampered_token_from_fake_server(world: World, s: Dict[str, Any]) -> None:
    machine = s["machine_id"]
    fake = world.fake(machine)
    before = world.jwks_fetches()
    with pytest.raises(TokenRefused) as tampered:
        Seat.acquire(f"{fake}/tampered", "LE-any", "cad-pro", machine)
    assert tampered.value.code == "bad_signature"
    with pytest.raises(TokenRefused) as foreign:
        Seat.acquire(f"{fake}/foreign", "LE-any", "cad-pro", machine)
    assert foreign.value.code == "unknown_key"
    assert world.jwks_fetches() - before == 2, "the key set is fetched once per acquire"


DRIVERS: Dict[str, Callable[[World, Dict[str, Any]], None]] = {
    f.__name__: f for f in (acquire_renew_release, no_seats_available, refusals,
                            offline_grace_then_back_online, offline_start_from_cache,
                            key_rotation, tampered_token_from_fake_server)
}


def test_the_table_names_exactly_the_scenarios_this_driver_runs() -> None:
    assert set(SCENARIOS) == set(DRIVERS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str) -> None:
    world = World()
    world.call("POST", "/server/reset")  # the original key, the door open
    DRIVERS[name](world, SCENARIOS[name])
