"""What the infrastructure tests share: deploy/infra parsed with python-hcl2, in a plain shape.

python-hcl2 (8.x) keeps the quotes of string literals and of block labels and adds markers
(`__is_block__`, `__comments__`); `plain` strips them, so `ssl_mode = "ENCRYPTED_ONLY"` reads
as {"ssl_mode": "ENCRYPTED_ONLY"} and an expression as "${var.x}".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "deploy" / "infra"
MODULES = INFRA / "modules"
ENVIRONMENTS = INFRA / "environments"
WORKFLOWS = ROOT / ".github" / "workflows"
README = ROOT / "deploy" / "README.md"
SHIM = ROOT / "deploy" / "cluster" / "shim-spin.yaml"


def tf_files() -> list[Path]:
    return sorted(INFRA.rglob("*.tf"))


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def plain(value):
    if isinstance(value, dict):
        return {
            unquote(k): plain(v) for k, v in value.items() if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return unquote(value)
    return value


def parse(path: Path) -> dict:
    with open(path) as f:
        return plain(hcl2.load(f))


def folder(path: Path) -> dict[str, list]:
    """Every top-level block of a module folder (its .tf files together), by block type."""
    out: dict[str, list] = {}
    for tf in sorted(path.glob("*.tf")):
        for kind, blocks in parse(tf).items():
            out.setdefault(kind, []).extend(blocks)
    return out


@dataclass(frozen=True)
class Resource:
    module: str  # the folder, relative to deploy/infra
    type: str
    name: str
    body: dict


def resources(kind: str = "resource") -> list[Resource]:
    """Every resource (or data source) in deploy/infra."""
    out = []
    for tf in tf_files():
        for block in parse(tf).get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out.append(Resource(str(tf.parent.relative_to(INFRA)), rtype, name, body))
    return out


def one_resource(rtype: str, module: str | None = None) -> list[Resource]:
    found = [r for r in resources() if r.type == rtype and (module is None or r.module == module)]
    assert found, f"no {rtype} in deploy/infra{'/' + module if module else ''}"
    return found


def block(body: dict, name: str) -> dict:
    """A nested block that appears once (python-hcl2 gives blocks as lists)."""
    value = body.get(name)
    assert isinstance(value, list) and len(value) == 1, f"expected one {name} block, got {value!r}"
    return value[0]


def module_calls(env: str) -> dict[str, dict]:
    """The module blocks of an environment root, by name."""
    calls = {}
    for entry in folder(ENVIRONMENTS / env).get("module", []):
        calls.update(entry)
    return calls


def variable_defaults(module: str) -> dict[str, object]:
    out = {}
    for entry in folder(MODULES / module).get("variable", []):
        for name, body in entry.items():
            if "default" in body:
                out[name] = body["default"]
    return out


def effective(env: str, module_name: str, module_dir: str, var: str):
    """What variable `var` of a module is in an environment: the root's argument, else the
    module's default."""
    call = module_calls(env)[module_name]
    assert call["source"] == f"../../modules/{module_dir}", call["source"]
    if var in call:
        return call[var]
    defaults = variable_defaults(module_dir)
    assert var in defaults, f"{env}: module {module_name} sets no {var}, and it has no default"
    return defaults[var]


def module_locals(module: str) -> dict[str, object]:
    out = {}
    for entry in folder(MODULES / module).get("locals", []):
        out.update(entry)
    return out


def readme_versions() -> dict[str, str]:
    """deploy/README.md's Versions table: piece -> version cell."""
    text = README.read_text()
    section = text.split("## Versions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and line.startswith("|") and not set(cells[0]) <= set("- "):
            rows[cells[0]] = cells[1]
    return rows


SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
