"""What needs no server: the machine fingerprint, the cache, refusals, URLs, verification."""

from __future__ import annotations

import os
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_edge import ConfigError, NoSeatsAvailable, RateLimited, Seat, machine
from license_edge import _token
from license_edge._cache import Cache, CachedSeat
from license_edge.errors import Forbidden, refusal


def test_the_fingerprint_is_the_rust_crates_and_hides_the_raw_id() -> None:
    f = machine.fingerprint_of("machine-1")
    assert len(f) == 32 and all(c in "0123456789abcdef" for c in f)
    assert f == machine.fingerprint_of(" machine-1\n")
    # Pinned, and equal to license_edge_client::machine::fingerprint_of("machine-1").
    assert f == "aa17bde707d0360b1e3b667bd2f8cc75"


def test_the_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(machine.OVERRIDE_ENV, "pod-7")
    assert machine.fingerprint() == machine.fingerprint_of("pod-7")


def test_the_cache_writes_privately_and_atomically(tmp_path: os.PathLike) -> None:
    cache = Cache(os.path.join(tmp_path, "sub"), "https://s", "cad-pro", "m1")
    assert cache.seat() is None
    s = CachedSeat("ses_1", "a.b.c", 90)
    cache.store_seat(s)
    cache.store_seat(s)
    assert cache.seat() == s
    assert stat.S_IMODE(os.stat(cache.seat_path).st_mode) == 0o600
    assert os.listdir(os.path.join(tmp_path, "sub")) == [cache.seat_path.name]
    cache.forget_seat()
    assert cache.seat() is None


def test_refusals_are_typed_with_the_servers_details() -> None:
    e = refusal(409, None, {"error": {"code": "no_seats_available", "message": "full",
                                      "details": {"max_seats": 1, "active_seats": 1,
                                                  "next_available_hint": "2026-12-02T05:00:00Z"}}})
    assert isinstance(e, NoSeatsAvailable) and e.next_available_hint == "2026-12-02T05:00:00Z"
    e = refusal(429, None, {"error": {"code": "rate_limited", "details": {"retry_after_s": 7}}})
    assert isinstance(e, RateLimited) and e.retry_after == 7 and e.transient
    e = refusal(403, None, {"error": {"code": "license_revoked", "message": "", "details": {}}})
    assert isinstance(e, Forbidden) and e.code == "license_revoked" and not e.transient
    assert refusal(503, None, None).transient


def test_plain_http_only_to_loopback() -> None:
    for ok in ("https://licenses.example.com", "http://127.0.0.1:3000", "http://localhost:1",
               "http://[::1]:3"):
        Seat(ok, "k", "p", "m")
    for bad in ("http://licenses.example.com", "ftp://127.0.0.1", "https://"):
        with pytest.raises(ConfigError):
            Seat(bad, "k", "p", "m")


def test_verification_follows_the_token_crates_rules() -> None:
    key = Ed25519PrivateKey.generate()
    jwk = jwt.PyJWK.from_json(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    keys = {"k1": jwk.key}
    now = int(time.time())
    claims = {"iss": "license-edge", "sub": "lic_1", "aud": "cad-pro", "iat": now, "nbf": now,
              "exp": now + 10, "sid": "ses_1", "jti": "ses_1", "offline_grace": 100,
              "mid": _token.machine_id_hash("m")}
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1"})
    check = dict(issuer="license-edge", audience="cad-pro", leeway=1, machine_id="m")
    assert _token.verify(token, keys, now=now, offline_grace=False, **check)["sub"] == "lic_1"
    # Offline: up to exp + offline_grace and not a second longer.
    _token.verify(token, keys, now=now + 109, offline_grace=True, **check)
    for when, offline in ((now + 110, True), (now + 11, False)):
        with pytest.raises(_token.TokenRefused) as e:
            _token.verify(token, keys, now=when, offline_grace=offline, **check)
        assert e.value.code == "expired"
    refused = {
        "unknown_key": jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k2"}),
        "unsupported_algorithm": jwt.encode(claims, "secret" * 8, algorithm="HS256",
                                            headers={"kid": "k1"}),
        "bad_signature": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
    }
    for code, bad in refused.items():
        with pytest.raises(_token.TokenRefused) as e:
            _token.verify(bad, keys, now=now, offline_grace=False, **check)
        assert e.value.code == code, (code, e.value.code)
    for name, value in (("machine_id", "other"), ("audience", "other"), ("issuer", "other")):
        with pytest.raises(_token.TokenRefused):
            _token.verify(token, keys, now=now, offline_grace=False, **{**check, name: value})
