"""`Seat`: a seat held for the life of a program, renewed by one background thread."""

from __future__ import annotations

import atexit
import enum
import ipaddress
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import HTTPError as TransportError

from . import _token
from ._cache import Cache, CachedSeat
from .errors import (ConfigError, LicenseError, ServerError, SessionEnded, TokenRefused,
                     Unreachable, refusal)

__version__ = "0.1.0"
MAX_ANSWER_BYTES = 1 << 20
#: The longest wait a server can ask for (interval, Retry-After): a day.
MAX_WAIT = 86_400


class State(enum.Enum):
    """Where a seat stands."""

    #: The server renews the seat; the token is current.
    ONLINE = "online"
    #: The server cannot be reached: licensed until ``Status.until`` (the token's ``exp``
    #: plus its ``offline_grace``); the client keeps trying and goes back online by itself.
    OFFLINE = "offline"
    #: Not licensed: the grace ran out, or the server refused the seat (see ``last_error``).
    LAPSED = "lapsed"
    #: Released, by ``release()`` or on leaving the ``with`` block.
    RELEASED = "released"


@dataclass(frozen=True)
class Status:
    """A seat's state now, and until when it holds (Unix seconds) when it is licensed."""

    state: State
    until: Optional[int] = None

    @property
    def licensed(self) -> bool:
        return self.state in (State.ONLINE, State.OFFLINE)


@dataclass
class _Held:
    session_id: str
    token: str
    claims: Dict[str, Any]
    interval: float
    failures: int = 0
    refused: bool = False
    last_error: Optional[LicenseError] = None
    retry_after: Optional[float] = None
    released: bool = False


class Seat:
    """A seat of a license for ``product`` on the machine ``machine_id`` (for instance
    :func:`license_edge.machine.fingerprint`), from the server at ``server`` (``https://``;
    plain ``http://`` only to loopback).

    ``Seat.acquire(...)`` acquires at once; ``with Seat(...) as seat:`` acquires on entry and
    releases on exit. Refusals raise typed errors: :class:`NoSeatsAvailable` (with
    ``next_available_hint``), :class:`Forbidden`, :class:`RateLimited` (``retry_after``),
    :class:`Unauthorized`. Every token is verified against the server's key set before it is
    trusted; an unknown ``kid`` makes the client fetch the key set once more (key rotation).
    """

    def __init__(self, server: str, license_key: str, product: str, machine_id: str, *,
                 issuer: str = "license-edge",
                 cache_dir: Union[str, "os.PathLike[str]", None] = None,
                 failures_before_offline: int = 3, clock_leeway: int = 60,
                 max_backoff: float = 300.0, timeout: float = 10.0,
                 metadata: Optional[Mapping[str, Any]] = None,
                 pinned_jwks: Optional[str] = None) -> None:
        self._base = server.rstrip("/")
        _check_url(self._base)
        if not product or not machine_id:
            raise ConfigError("the product and machine id must not be empty")
        self._auth = f"Bearer {license_key}"
        self.product = product
        self.machine_id = machine_id
        self._issuer = issuer
        self._failures_before_offline = max(1, failures_before_offline)
        self._leeway = int(clock_leeway)
        self._max_backoff = min(max(0.1, float(max_backoff)), float(MAX_WAIT))
        self._timeout = timeout
        self._metadata = dict(metadata) if metadata is not None else None
        self._pinned = pinned_jwks is not None
        self._cache = Cache(cache_dir, self._base, product, machine_id) if cache_dir else None
        keys_text = pinned_jwks if pinned_jwks is not None else (
            self._cache.jwks() if self._cache else None)
        self._keys: _token.Keys = _token.keys_from_jwks(keys_text) if keys_text else {}
        self._http = requests.Session()
        self._http.headers["User-Agent"] = f"license-edge-python/{__version__}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._held: Optional[_Held] = None

    # --- Starting and stopping ---------------------------------------------------------------

    @classmethod
    def acquire(cls, server: str, license_key: str, product: str, machine_id: str,
                **options: Any) -> "Seat":
        """A seat, acquired and verified, renewing in the background."""
        seat = cls(server, license_key, product, machine_id, **options)
        seat._start()
        return seat

    def __enter__(self) -> "Seat":
        if self._held is None:
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except LicenseError:
            pass  # the lease lapses by itself; an exit must not raise for it

    def _start(self) -> None:
        offline = False
        try:
            held = self._fresh(*self._acquire_verified())
        except LicenseError as e:
            cached = self._cached_seat() if e.transient and e.code != "rate_limited" else None
            if cached is None:
                raise
            cached.failures = self._failures_before_offline
            cached.last_error = e
            held, offline = cached, True
        self._held = held
        self._thread = threading.Thread(target=self._run, args=(offline,),
                                        name="license-edge-heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self._release_quietly)

    def release(self) -> None:
        """Stops renewing and releases the seat on the server (freeing it at once). The seat is
        released whatever the answer; an error says the server did not confirm."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        atexit.unregister(self._release_quietly)
        with self._lock:
            held = self._held
            if held is None or held.released:
                return
            held.released = True
            session_id = held.session_id
        try:
            self._call("DELETE", f"/api/v1/licenses/sessions/{_segment(session_id)}/")
        except SessionEnded:
            pass
        if self._cache:
            self._cache.forget_seat()

    def _release_quietly(self) -> None:
        try:
            self.release()
        except LicenseError:
            pass

    # --- What the program reads --------------------------------------------------------------

    def status(self) -> Status:
        """Where the seat stands now (computed from the token and the clock at each call)."""
        with self._lock:
            held = self._held
            if held is None or held.released:
                return Status(State.RELEASED)
            if held.refused:
                return Status(State.LAPSED)
            now = int(time.time())
            if held.failures < self._failures_before_offline and self._holds(held, now, False):
                return Status(State.ONLINE, int(held.claims["exp"]))
            if self._holds(held, now, True):
                return Status(State.OFFLINE, _token.lapses_at(held.claims, self._leeway, True))
            return Status(State.LAPSED)

    @property
    def licensed(self) -> bool:
        """Whether the program may run its licensed features now."""
        return self.status().licensed

    @property
    def claims(self) -> Dict[str, Any]:
        """The verified claims held now: ``plan``, ``features``, ``exp``, ``offline_grace``..."""
        with self._lock:
            return dict(self._require().claims)

    @property
    def token(self) -> str:
        with self._lock:
            return self._require().token

    @property
    def session_id(self) -> str:
        with self._lock:
            return self._require().session_id

    @property
    def failures(self) -> int:
        """How many renewals in a row have failed (0 while online)."""
        with self._lock:
            return self._require().failures

    @property
    def last_error(self) -> Optional[LicenseError]:
        with self._lock:
            return self._require().last_error

    def _require(self) -> _Held:
        if self._held is None:
            raise ConfigError("the seat has not been acquired")
        return self._held

    def _holds(self, held: _Held, now: int, offline: bool) -> bool:
        try:
            _token.check_claims(held.claims, issuer=self._issuer, audience=self.product,
                                leeway=self._leeway, machine_id=self.machine_id, now=now,
                                offline_grace=offline)
            return True
        except TokenRefused:
            return False

    # --- The heartbeat thread ----------------------------------------------------------------

    def _run(self, start_offline: bool) -> None:
        first = True
        while True:
            delay = 0.0 if (first and start_offline) else self._next_delay()
            first = False
            if self._stop.wait(delay):
                return
            try:
                self._renew()
            except Exception as e:  # never let the thread die: count it as a failure
                self._failed(Unreachable(f"unexpected: {e!r}"))

    def _next_delay(self) -> float:
        with self._lock:
            held = self._require()
            if held.failures == 0:
                base = held.interval
            else:
                base = min(self._max_backoff, held.interval * 2 ** min(held.failures - 1, 16))
            base = min(max(base, held.retry_after or 0.0), MAX_WAIT)
        return base * random.uniform(0.9, 1.1)

    def _renew(self) -> None:
        with self._lock:
            session_id = self._require().session_id
        try:
            try:
                grant = self._call("PATCH",
                                   f"/api/v1/licenses/sessions/{_segment(session_id)}/heartbeat/")
                fresh = self._verify_grant(grant)
            except SessionEnded:
                fresh = self._acquire_verified()
        except LicenseError as e:
            self._failed(e)
            return
        with self._lock:
            if self._held is not None and self._held.released:
                return
            self._held = self._fresh(*fresh)

    def _failed(self, e: LicenseError) -> None:
        with self._lock:
            held = self._require()
            if held.released:
                return
            held.failures += 1
            held.retry_after = getattr(e, "retry_after", None)
            # The server said no (suspended, revoked, seat given away): the token is not to be
            # used any more. A token that failed verification is not the server's word.
            held.refused = not e.transient and not isinstance(e, TokenRefused)
            held.last_error = e

    # --- Talking to the server ---------------------------------------------------------------

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"Authorization": self._auth} if not path.startswith("/.well-known") else {}
        try:
            with self._http.request(method, self._base + path, json=body, headers=headers,
                                    timeout=self._timeout, allow_redirects=False,
                                    stream=True) as r:
                # At most MAX_ANSWER_BYTES are read, whatever the server sends.
                content = r.raw.read(MAX_ANSWER_BYTES, decode_content=True)
        except (requests.RequestException, TransportError, OSError) as e:
            raise Unreachable(str(e)) from e
        try:
            parsed: Any = json.loads(content) if content else None
        except ValueError:
            parsed = None
        if 200 <= r.status_code < 300:
            if parsed is None:
                raise ServerError(r.status_code, "invalid_answer", "the answer is not JSON")
            return parsed
        retry_after: Optional[float] = None
        try:
            retry_after = min(float(r.headers.get("Retry-After", "")), MAX_WAIT)
        except ValueError:
            pass
        raise refusal(r.status_code, retry_after, parsed)

    def _acquire_verified(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        body: Dict[str, Any] = {"machine_id": self.machine_id}
        if self._metadata is not None:
            body["metadata"] = self._metadata
        return self._verify_grant(self._call("POST", "/api/v1/licenses/acquire/", body))

    def _verify_grant(self, grant: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        if not isinstance(grant, dict) or not isinstance(grant.get("license_token"), str) \
                or not isinstance(grant.get("session_id"), str):
            raise ServerError(200, "invalid_answer", "the answer is not a grant")
        token = grant["license_token"]
        try:
            claims = self._verify(token, offline=False)
        except TokenRefused as e:
            if e.code != "unknown_key" or self._pinned:
                raise
            # The server may have rotated its key: fetch its key set once more, then decide.
            text = self._fetch_jwks()
            self._keys = _token.keys_from_jwks(text)
            if self._cache:
                self._cache.store_jwks(text)
            claims = self._verify(token, offline=False)
        if claims["sid"] != grant["session_id"]:
            raise TokenRefused("the token is another session's", "invalid_claim")
        return grant, claims

    def _fetch_jwks(self) -> str:
        return json.dumps(self._call("GET", "/.well-known/jwks.json"))

    def _verify(self, token: str, offline: bool) -> Dict[str, Any]:
        return _token.verify(token, self._keys, issuer=self._issuer, audience=self.product,
                             leeway=self._leeway, machine_id=self.machine_id,
                             now=int(time.time()), offline_grace=offline)

    def _fresh(self, grant: Dict[str, Any], claims: Dict[str, Any]) -> _Held:
        interval = grant.get("heartbeat_interval_s")
        interval = min(interval, MAX_WAIT) if isinstance(interval, int) and interval > 0 else 180
        if self._cache:
            try:
                self._cache.store_seat(CachedSeat(grant["session_id"], grant["license_token"],
                                                  interval))
            except OSError:
                pass  # a full disk must not cost the program its seat
        return _Held(grant["session_id"], grant["license_token"], claims, float(interval))

    def _cached_seat(self) -> Optional[_Held]:
        cached = self._cache.seat() if self._cache else None
        if cached is None:
            return None
        try:
            claims = self._verify(cached.token, offline=True)
        except TokenRefused:
            return None
        if claims["sid"] != cached.session_id:
            return None
        return _Held(cached.session_id, cached.token, claims,
                     float(min(max(1, cached.heartbeat_interval_s), MAX_WAIT)))


def _segment(session_id: str) -> str:
    if not session_id or not all(c.isascii() and (c.isalnum() or c in "_-") for c in session_id):
        raise ConfigError(f"not a session id: {session_id!r}")
    return session_id


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"server {url!r} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme != "http":
        raise ConfigError(f"server {url!r} must start with https://")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    if not loopback:
        raise ConfigError(f"refusing to send the license key in clear text to {host}: use https://")
