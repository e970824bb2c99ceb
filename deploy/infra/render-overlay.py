#!/usr/bin/env python3
"""Writes an environment's OpenTofu outputs into its kustomize overlay, so each address is
written once (in the infrastructure) and copied by this script, never by hand.

Usage:
  tofu -chdir=deploy/infra/environments/ENV output -json > ENV.json
  deploy/infra/render-overlay.py ENV ENV.json                      # addresses and image name
  deploy/infra/render-overlay.py ENV ENV.json --digest sha256:...  # ... and the image's digest
  deploy/infra/render-overlay.py ENV --digest sha256:...           # the digest only (pipeline)

What it changes, in deploy/overlays/ENV (comments and other lines stay as they are):
  config.env          db_host   = the Cloud SQL instance's DNS name, port 5432 (the name its server
                                  certificate carries; Spin's allow-list and database_url use it)
                      db_ip     = its private IP (the egress NetworkPolicy's address)
                      redis_host = the Memorystore IP and port (6378, TLS)
                      gcp_project, secrets_reader_sa = the project and the Google service
                                  account External Secrets Operator reads Secret Manager as
  kustomization.yaml  images: newName = the Artifact Registry image; with --digest, the digest
                      instead of newTag (what the pipeline deploys)

It checks the outputs belong to this overlay (same namespace) and writes nothing otherwise.
Standard library only: it runs wherever the test command or the pipeline runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "overlays"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class RenderError(Exception):
    pass


def output_values(outputs: dict) -> dict[str, object]:
    """`tofu output -json` gives {name: {"value": ..., "type": ..., "sensitive": ...}}."""
    try:
        return {name: entry["value"] for name, entry in outputs.items()}
    except (TypeError, KeyError) as e:
        raise RenderError(f"not the JSON of `tofu output -json`: {e}") from e


def require(values: dict[str, object], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value:
        raise RenderError(f"output {name} is missing or empty")
    return value


def ip(value: str, name: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as e:
        raise RenderError(f"output {name} is not an IPv4 address: {value!r}") from e


def set_env_values(text: str, updates: dict[str, str]) -> str:
    """Replaces KEY=... lines; a key with no line is added at the end."""
    lines = text.splitlines()
    seen = set()
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in updates:
            lines[i] = f"{key}={updates[key]}"
            seen.add(key)
    for key, value in updates.items():
        if key not in seen:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def set_image(text: str, image: str, digest: str | None) -> str:
    """Rewrites the `- name: license-edge` entry of `images:` (newName, and newTag or digest)."""
    pattern = re.compile(
        r"(?P<head>^images:\n  - name: license-edge\n)(?P<body>(?:    [^\n]*\n)+)", re.M
    )
    match = pattern.search(text)
    if match is None:
        raise RenderError("kustomization.yaml has no `images:` entry for license-edge")
    body = match["body"]
    current = dict(re.findall(r"^    (newName|newTag|digest): *(\S*)$", body, re.M))
    entry = f"    newName: {image}\n"
    if digest is not None:
        entry += f"    digest: {digest}\n"
    elif "digest" in current:
        entry += f"    digest: {current['digest']}\n"
    else:
        entry += f"    newTag: {current.get('newTag', 'REPLACE_ME')}\n"
    return text[: match.start("body")] + entry + text[match.end("body") :]


def current_image(kustomization: Path) -> str:
    match = re.search(r"^images:\n  - name: license-edge\n    newName: *(\S+)$", kustomization.read_text(), re.M)
    if match is None:
        raise RenderError(f"{kustomization} names no image for license-edge")
    return match[1]


def render(env: str, outputs: dict | None, digest: str | None) -> dict[Path, str]:
    """The new content of each file this script writes, by path. Without outputs, only the
    digest is set, on the image the overlay already names."""
    overlay = OVERLAYS / env
    kustomization = overlay / "kustomization.yaml"
    config = overlay / "config.env"
    if not kustomization.is_file():
        raise RenderError(f"no overlay {overlay}")
    if digest is not None and not DIGEST.match(digest):
        raise RenderError(f"not a sha256 digest: {digest!r}")
    if outputs is None:
        if digest is None:
            raise RenderError("give the outputs, a --digest, or both")
        return {kustomization: set_image(kustomization.read_text(), current_image(kustomization), digest)}
    values = output_values(outputs)

    namespace = require(values, "namespace")
    declared = re.search(r"^namespace: *(\S+)$", kustomization.read_text(), re.M)
    if declared is None or declared[1] != namespace:
        raise RenderError(
            f"these outputs are for namespace {namespace}, overlay {env} deploys to "
            f"{declared[1] if declared else 'no namespace'}"
        )
    db_name = require(values, "db_dns_name").rstrip(".").lower()
    if not DNS_NAME.match(db_name):
        raise RenderError(f"output db_dns_name is not a DNS name: {db_name!r}")
    db_ip = ip(require(values, "db_private_ip"), "db_private_ip")
    redis_ip = ip(require(values, "redis_host"), "redis_host")
    redis_port = values.get("redis_port")
    if redis_port != 6378:
        raise RenderError(f"output redis_port is {redis_port!r}, not 6378 (TLS)")
    environment = require(values, "environment")
    if environment != env:
        raise RenderError(f"these outputs are for environment {environment}, not {env}")
    project = require(values, "project_id")
    if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", project):
        raise RenderError(f"output project_id is not a project id: {project!r}")
    reader = require(values, "secrets_reader_service_account")
    if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\.iam\.gserviceaccount\.com$", reader):
        raise RenderError(f"output secrets_reader_service_account is not a service account: {reader!r}")
    image = require(values, "image")
    if not re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/[a-z0-9-]+/[a-z0-9-]+/license-edge$", image):
        raise RenderError(f"output image is not an Artifact Registry image: {image!r}")
    return {
        config: set_env_values(
            config.read_text(),
            {
                "db_host": f"{db_name}:5432",
                "db_ip": db_ip,
                "redis_host": f"{redis_ip}:6378",
                "gcp_project": project,
                "secrets_reader_sa": reader,
            },
        ),
        kustomization: set_image(kustomization.read_text(), image, digest),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env", help="staging or production (deploy/overlays/ENV)")
    parser.add_argument(
        "outputs", nargs="?", help="the file `tofu output -json` wrote, or - for stdin"
    )
    parser.add_argument("--digest", help="the image digest to deploy (sha256:...)")
    args = parser.parse_args(argv)
    try:
        outputs = None
        if args.outputs is not None:
            text = sys.stdin.read() if args.outputs == "-" else Path(args.outputs).read_text()
            outputs = json.loads(text)
        files = render(args.env, outputs, args.digest)
    except (OSError, json.JSONDecodeError, RenderError) as e:
        print(f"render-overlay: {e}", file=sys.stderr)
        return 1
    for path, content in files.items():
        path.write_text(content)
        print(f"render-overlay: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
