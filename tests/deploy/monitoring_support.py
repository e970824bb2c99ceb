"""What the monitoring tests share: deploy/monitoring's files, promtool, and the names of the
metrics the collector configuration produces, derived from that configuration the way the
collector's Prometheus exporter names them.

The naming follows the OpenTelemetry-to-Prometheus translation the collector's `prometheus`
exporter applies with its default `add_metric_suffixes: true`: dots become underscores, a
duration unit of seconds adds `_seconds`, a monotonic sum adds `_total`, a histogram is exported
as `_bucket`, `_sum` and `_count`. We have not run the collector here (no binary can be fetched);
deploy/README.md says how to check the names against a running one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from deploy_support import DEPLOY

MONITORING = DEPLOY / "monitoring"
COLLECTOR_CONFIG = MONITORING / "otelcol.yaml"
BLACKBOX_CONFIG = MONITORING / "blackbox.yml"
RULES = MONITORING / "prometheus" / "rules.yaml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
RULE_TESTS = MONITORING / "tests" / "rules.test.yaml"
DASHBOARD = MONITORING / "grafana" / "license-edge.json"

# The route that reports PostgreSQL (health component): monitoring only, never a Kubernetes probe.
DB_HEALTH_PATH = "/api/v1/health/db/"

# What the blackbox exporter exports for each probe (its prober and the HTTP prober), and the
# labels our scrape job gives them.
BLACKBOX_METRICS = {
    "probe_success", "probe_duration_seconds", "probe_http_status_code",
    "probe_http_duration_seconds", "probe_http_content_length", "probe_dns_lookup_time_seconds",
}  # fmt: skip
PROBE_LABELS = {"job", "instance", "module"}
# Prometheus' own series for every scrape target.
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# The labels spanmetrics always adds (service.name, span.name, span.kind, status.code).
SPANMETRICS_DEFAULT_LABELS = {"service_name", "span_name", "span_kind", "status_code"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError(
            "promtool is not installed: the monitoring tests check and unit-test the Prometheus "
            "rules with it. Install Debian's `prometheus` package (scripts/test.sh does: "
            "apt-get install prometheus), which ships promtool."
        )
    return path


def blackbox_exporter() -> str:
    for name in ("prometheus-blackbox-exporter", "blackbox_exporter"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(
        "the blackbox exporter is not installed: the monitoring tests check blackbox.yml with "
        "its --config.check. Install Debian's `prometheus-blackbox-exporter` package "
        "(scripts/test.sh does)."
    )


def run_tool(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def prometheus_name(otel_name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_:]", "_", otel_name)


def prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


def collector_metrics(config: dict) -> dict[str, set[str]]:
    """The Prometheus series names the collector's configuration produces, each with the labels
    its series may carry (besides job and instance)."""
    out: dict[str, set[str]] = {}
    for name, settings in (config.get("connectors") or {}).items():
        kind = name.split("/")[0]
        settings = settings or {}
        if kind == "spanmetrics":
            namespace = settings.get("namespace", "traces.span.metrics")
            labels = SPANMETRICS_DEFAULT_LABELS | {
                prometheus_label(d["name"]) for d in settings.get("dimensions", [])
            }
            out[prometheus_name(f"{namespace}.calls") + "_total"] = labels
            histogram = settings.get("histogram", {})
            if not histogram.get("disable"):
                unit = {"ms": "milliseconds", "s": "seconds"}[histogram.get("unit", "ms")]
                base = prometheus_name(f"{namespace}.duration") + f"_{unit}"
                for suffix in ("_bucket", "_sum", "_count"):
                    out[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        elif kind == "count":
            for signal in ("logs", "spans", "spanevents", "metrics", "datapoints"):
                for metric, spec in (settings.get(signal) or {}).items():
                    labels = {prometheus_label(a["key"]) for a in (spec or {}).get("attributes", [])}
                    out[prometheus_name(metric) + "_total"] = labels
    return out


# --- PromQL: the metric names and label matchers an expression uses ---------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on",
             "ignoring", "group_left", "group_right"}  # fmt: skip


def promql_selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """Every vector selector of `expr`: (metric name, {label: (operator, value)})."""
    found = []
    # Selectors with braces first; what is left of them is a bare name or nothing.
    for match in _SELECTOR.finditer(expr):
        matchers = {m[1]: (m[2], m[3]) for m in _MATCHER.finditer(match[2])}
        if match[1] is not None and match[1] not in _KEYWORDS:
            found.append((match[1], matchers))
        elif "__name__" in matchers:
            found.append((matchers["__name__"][1], matchers))
    rest = _SELECTOR.sub(" ", expr)
    rest = _STRING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries
    rest = _GROUPING.sub(" ", rest)
    rest = re.sub(r"\boffset\s+-?\d+[smhdwy]+", " ", rest)
    for name in _IDENT.findall(rest):
        if name not in _KEYWORDS:
            found.append((name, {}))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    """(rule name, expression) of every rule in rules.yaml."""
    out = []
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            out.append((rule.get("alert") or rule["record"], rule["expr"]))
    return out


def recorded_names() -> set[str]:
    return {rule["record"] for g in load_yaml(RULES)["groups"] for rule in g["rules"] if "record" in rule}


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for g in load_yaml(RULES)["groups"] for rule in g["rules"] if "alert" in rule}


def dashboard_expressions(dashboard: dict) -> list[tuple[str, str]]:
    return [
        (f"panel {panel['id']} {target['refId']}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
