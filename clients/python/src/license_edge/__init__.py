"""Holds a license-edge seat for a program: acquire, verify offline, heartbeat, offline grace,
release. The Python twin of the Rust crate ``license-edge-client``, with the same rules.

    from license_edge import Seat, machine

    with Seat("https://licenses.example.com", "LE-...", "cad-pro", machine.fingerprint(),
              cache_dir="~/.cache/cad-pro") as seat:
        print(seat.claims["plan"], seat.claims["features"])
        while seat.licensed:
            ...
"""

from . import machine
from .errors import (ConfigError, Forbidden, LicenseError, MachineIdUnavailable,
                     NoSeatsAvailable, RateLimited, ServerError, SessionBorrowed, SessionEnded,
                     TokenRefused, Unauthorized, Unreachable)
from .seat import Seat, State, Status, __version__

__all__ = [
    "ConfigError", "Forbidden", "LicenseError", "MachineIdUnavailable", "NoSeatsAvailable",
    "RateLimited", "Seat", "ServerError", "SessionBorrowed", "SessionEnded", "State", "Status",
    "TokenRefused", "Unauthorized", "Unreachable", "__version__", "machine",
]
