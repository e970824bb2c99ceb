"""The on-disk cache: the server's key set and the last good token, in a folder the program
chooses. Files are written whole or not at all (a temporary file in the same folder, then
``os.replace``) and readable by their owner only (0600). The layout is the Rust crate's, so
either library can start from what the other cached."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union


@dataclass(frozen=True)
class CachedSeat:
    session_id: str
    token: str
    heartbeat_interval_s: int


class Cache:
    def __init__(self, folder: Union[str, "os.PathLike[str]"], server: str, product: str,
                 machine_id: str) -> None:
        self.folder = Path(folder).expanduser()
        key = hashlib.sha256(f"{server}\n{product}\n{machine_id}".encode()).hexdigest()
        self.seat_path = self.folder / f"seat-{key[:16]}.json"
        self.jwks_path = self.folder / "jwks.json"

    def jwks(self) -> Optional[str]:
        try:
            return self.jwks_path.read_text(encoding="utf-8")
        except OSError:
            return None

    def store_jwks(self, text: str) -> None:
        write_private(self.jwks_path, text.encode())

    def seat(self) -> Optional[CachedSeat]:
        try:
            v = json.loads(self.seat_path.read_text(encoding="utf-8"))
            return CachedSeat(str(v["session_id"]), str(v["token"]),
                              int(v.get("heartbeat_interval_s", 180)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store_seat(self, seat: CachedSeat) -> None:
        body = {"session_id": seat.session_id, "token": seat.token,
                "heartbeat_interval_s": seat.heartbeat_interval_s}
        write_private(self.seat_path, json.dumps(body).encode())

    def forget_seat(self) -> None:
        try:
            self.seat_path.unlink()
        except OSError:
            pass


def write_private(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp makes the file 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
