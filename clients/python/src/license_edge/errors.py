"""Every way a seat can be refused or fail, as exceptions carrying what the server said."""

from __future__ import annotations

from typing import Any, Mapping, Optional


class LicenseError(Exception):
    """Base of every error of this package. ``code`` is the server's stable code (or one of
    the client's own); ``transient`` says whether trying again later may succeed."""

    code: str = "error"
    transient: bool = False

    def __init__(self, message: str = "", code: Optional[str] = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code


class NoSeatsAvailable(LicenseError):
    """409 ``no_seats_available``: every seat is held."""

    code = "no_seats_available"

    def __init__(self, message: str, max_seats: Optional[int], active_seats: Optional[int],
                 next_available_hint: Optional[str]) -> None:
        super().__init__(message)
        self.max_seats = max_seats
        self.active_seats = active_seats
        #: When a seat is expected to come free (RFC 3339), as the server estimates it.
        self.next_available_hint = next_available_hint


class Forbidden(LicenseError):
    """403: ``license_suspended``, ``license_revoked``, ``license_expired``,
    ``borrow_not_allowed``."""


class RateLimited(LicenseError):
    """429 ``rate_limited``: too many acquire attempts; ``retry_after`` seconds to wait."""

    code = "rate_limited"
    transient = True

    def __init__(self, message: str, retry_after: Optional[float]) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(LicenseError):
    """401: the license key is missing, malformed or unknown."""

    code = "unauthorized"


class SessionBorrowed(LicenseError):
    """409 ``session_borrowed``: a borrowed session cannot be released."""

    code = "session_borrowed"

    def __init__(self, message: str, borrowed_until: Optional[str]) -> None:
        super().__init__(message)
        self.borrowed_until = borrowed_until


class SessionEnded(LicenseError):
    """404/410: the session is gone (released, lapsed, unknown): acquire again."""


class ServerError(LicenseError):
    """Any other refusal (4xx) or a server failure (5xx, transient)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}", code)
        self.status = status
        self.transient = status >= 500


class Unreachable(LicenseError):
    """The server could not be reached, or its answer could not be read."""

    code = "unreachable"
    transient = True


class TokenRefused(LicenseError):
    """The server's token (or key set) does not verify; ``code`` says why (``bad_signature``,
    ``unknown_key``, ``expired``, ...), with the token crate's codes."""


class ConfigError(LicenseError):
    """The settings cannot work (e.g. plain http:// to a host that is not loopback)."""

    code = "config"


class MachineIdUnavailable(LicenseError):
    """No machine id could be read (see :mod:`license_edge.machine`)."""

    code = "machine_id"


def refusal(status: int, retry_after: Optional[float], body: Any) -> LicenseError:
    """The error a non-2xx answer stands for."""
    error: Mapping[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
    raw_code, raw_message, raw_details = error.get("code"), error.get("message"), error.get("details")
    code: str = raw_code if isinstance(raw_code, str) else f"http_{status}"
    message: str = raw_message if isinstance(raw_message, str) else ""
    details: Mapping[str, Any] = raw_details if isinstance(raw_details, dict) else {}

    def num(name: str) -> Optional[int]:
        v = details.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def text(name: str) -> Optional[str]:
        v = details.get(name)
        return v if isinstance(v, str) else None

    if status == 409 and code == "no_seats_available":
        return NoSeatsAvailable(message, num("max_seats"), num("active_seats"),
                                text("next_available_hint"))
    if status == 409 and code == "session_borrowed":
        return SessionBorrowed(message, text("borrowed_until"))
    if status == 429:
        after = retry_after if retry_after is not None else num("retry_after_s")
        return RateLimited(message, float(after) if after is not None else None)
    if status == 401:
        return Unauthorized(message)
    if status == 403:
        return Forbidden(message, code)
    if status in (404, 410):
        return SessionEnded(message, code)
    return ServerError(status, code, message)
