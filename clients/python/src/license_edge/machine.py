"""A machine fingerprint: an id for this computer that stays the same across reboots and
reinstalls, sent as the ``machine_id`` of an acquire (one machine, one seat).

What it reads:

=========  =====================================================================
Linux      ``/etc/machine-id``, else ``/var/lib/dbus/machine-id`` (written once, at install)
macOS      ``IOPlatformUUID`` from ``ioreg -rd1 -c IOPlatformExpertDevice`` (the hardware UUID)
Windows    ``HKLM\\SOFTWARE\\Microsoft\\Cryptography\\MachineGuid`` (set at install)
=========  =====================================================================

The raw id never leaves the machine: the fingerprint is the first 32 hex digits of the
SHA-256 of ``license-edge machine v1``, a NUL and the raw id; the Rust crate computes the very
same value, so both libraries hold the same seat on one machine.

Overrides and containers: ``LICENSE_EDGE_MACHINE_ID``, when set and not empty, is used as the
raw id on every OS. In a container (``/.dockerenv`` or ``/run/.containerenv`` exists, or
``KUBERNETES_SERVICE_HOST`` is set) ``/etc/machine-id`` is missing or baked into the image, so
every container of an image would share one seat: there :func:`fingerprint` raises
:class:`~license_edge.errors.MachineIdUnavailable` unless the override is set (to something
stable per instance, or to the host's machine id mounted read-only).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from .errors import MachineIdUnavailable

OVERRIDE_ENV = "LICENSE_EDGE_MACHINE_ID"


def fingerprint() -> str:
    """This machine's fingerprint: 32 lowercase hex digits."""
    override = os.environ.get(OVERRIDE_ENV, "").strip()
    if override:
        return fingerprint_of(override)
    if _in_container():
        raise MachineIdUnavailable(
            "running in a container, where the OS machine id is missing or shared by every "
            f"container of the image: set {OVERRIDE_ENV} to an id stable for this instance")
    return fingerprint_of(_raw_machine_id())


def fingerprint_of(raw: str) -> str:
    """The fingerprint of a raw machine id."""
    digest = hashlib.sha256(b"license-edge machine v1\0" + raw.strip().encode()).hexdigest()
    return digest[:32]


def _in_container() -> bool:
    return sys.platform.startswith("linux") and (
        os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
        or "KUBERNETES_SERVICE_HOST" in os.environ)


def _raw_machine_id() -> str:
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as e:
            raise MachineIdUnavailable(f"running ioreg: {e}") from e
        for line in out.splitlines():
            if '"IOPlatformUUID"' in line:
                parts = line.split('"')
                if len(parts) > 3:
                    return parts[3]
        raise MachineIdUnavailable("ioreg printed no IOPlatformUUID")
    if sys.platform == "win32":
        import winreg  # type: ignore[import-not-found]

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined]
                                r"SOFTWARE\Microsoft\Cryptography") as key:
                value, _ = winreg.QueryValueEx(key, "MachineGuid")  # type: ignore[attr-defined]
                return str(value)
        except OSError as e:
            raise MachineIdUnavailable(f"the registry has no MachineGuid: {e}") from e
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError:
            continue
        if value:
            return value
    raise MachineIdUnavailable(
        f"neither /etc/machine-id nor /var/lib/dbus/machine-id can be read: set {OVERRIDE_ENV}")
