"""deploy/monitoring: the OpenTelemetry Collector's configuration, the Prometheus rules (checked
and unit-tested with promtool), the scrape configuration, the blackbox exporter's modules and the
Grafana dashboard, against each other and against the rendered manifests. promtool and the
blackbox exporter must be installed (scripts/test.sh installs both); a test fails, never skips,
without them."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import yaml

from deploy_support import (
    DEPLOY,
    LIVENESS_PATH,
    READINESS_PATH,
    environments,
    one,
    render,
)
from monitoring_support import (
    BLACKBOX_CONFIG,
    BLACKBOX_METRICS,
    COLLECTOR_CONFIG,
    DASHBOARD,
    DB_HEALTH_PATH,
    MONITORING,
    PROBE_LABELS,
    PROMETHEUS_CONFIG,
    PROMETHEUS_METRICS,
    RULE_TESTS,
    RULES,
    TARGET_LABELS,
    alerts,
    blackbox_exporter,
    collector_metrics,
    dashboard_expressions,
    load_yaml,
    promql_selectors,
    promtool,
    recorded_names,
    rule_expressions,
    run_tool,
)

ENVS = environments()
README = DEPLOY / "README.md"
# What the issue asks to be alerted on, by the alert that does it.
REQUIRED_ALERTS = {
    "LicenseEdgeHigh5xxRate",  # 5xx rate
    "LicenseEdgeSlowRoute",  # p99 latency per route
    "LicenseEdgeNotReady",  # readiness failing (the kubelet's checks)
    "LicenseEdgeReadinessProbeDown",  # readiness failing (through the Service, hangs included)
    "LicenseEdgeRevocationUnavailable",  # revocation_unavailable answers
    "LicenseEdgeSeatRefusalSpike",  # no_seats_available spikes
    "LicenseEdgePostgresUnreachable",  # PostgreSQL unreachable
}
# spin-operator v0.6.1's OtelConfig (api/v1alpha1/spinappexecutor_types.go): the environment
# variables it sets on the app's containers.
OTEL_CONFIG_FIELDS = {
    "exporter_otlp_endpoint", "exporter_otlp_traces_endpoint", "exporter_otlp_metrics_endpoint",
    "exporter_otlp_logs_endpoint",
}  # fmt: skip
OTLP_HTTP_PORT = 4318
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def collector() -> dict:
    return load_yaml(COLLECTOR_CONFIG)


@pytest.fixture(scope="module")
def monitoring_docs() -> list[dict]:
    return render(MONITORING)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def known_metrics(collector: dict) -> dict[str, set[str] | None]:
    """Every series a rule or panel may read, with its labels (None: not checked; a recording
    rule's labels are its own expression's)."""
    out: dict[str, set[str] | None] = {
        name: labels | TARGET_LABELS for name, labels in collector_metrics(collector).items()
    }
    out |= {name: PROBE_LABELS for name in BLACKBOX_METRICS}
    out |= {name: TARGET_LABELS for name in PROMETHEUS_METRICS}
    out |= {name: None for name in recorded_names()}
    return out


def unknown_references(expr: str, known: dict[str, set[str] | None]) -> list[str]:
    problems = []
    for metric, matchers in promql_selectors(expr):
        if metric not in known:
            problems.append(f"metric {metric} is produced by nothing in deploy/monitoring")
            continue
        labels = known[metric]
        for label in matchers:
            if labels is not None and label not in labels and label != "__name__":
                problems.append(f"{metric} has no label {label} (it has {sorted(labels)})")
    return problems


# --- promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_the_rules():
    out = run_tool([promtool(), "check", "rules", str(RULES)]).stdout
    assert re.search(r"SUCCESS: \d+ rules found", out), out


def test_promtool_accepts_the_scrape_configuration():
    # Also loads rules.yaml through rule_files.
    run_tool([promtool(), "check", "config", str(PROMETHEUS_CONFIG)])


def test_promtool_unit_tests_pass():
    out = run_tool([promtool(), "test", "rules", str(RULE_TESTS)], cwd=RULE_TESTS.parent).stdout
    assert "SUCCESS" in out and "FAILED" not in out, out


def test_promtool_unit_tests_can_fail(tmp_path):
    # The same tests against rules whose validate threshold is raised tenfold must fail: the
    # tests pin the thresholds, not only the syntax.
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "tests").mkdir()
    weakened = RULES.read_text().replace(
        '{http_route="/api/v1/licenses/validate"} > 0.25', '{http_route="/api/v1/licenses/validate"} > 2.5'
    )
    assert weakened != RULES.read_text(), "the validate threshold moved: update this test"
    (tmp_path / "prometheus" / "rules.yaml").write_text(weakened)
    (tmp_path / "tests" / "rules.test.yaml").write_text(RULE_TESTS.read_text())
    result = __import__("subprocess").run(
        [promtool(), "test", "rules", "rules.test.yaml"], capture_output=True, text=True,
        cwd=tmp_path / "tests", timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "LicenseEdgeSlowRoute" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet():
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in load_yaml(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert set(alerts()) <= fired, set(alerts()) - fired
    assert set(alerts()) <= quiet, set(alerts()) - quiet


# --- The rules --------------------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_the_issues_alerts_exist_and_each_says_what_to_do():
    rules = alerts()
    assert REQUIRED_ALERTS <= set(rules), REQUIRED_ALERTS - set(rules)
    anchors = github_anchors(README.read_text())
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("page", "warning"), name
        assert re.fullmatch(r"\d+m", rule["for"]), f"{name}: every alert waits before firing"
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        # Each says where its metric comes from.
        assert "Source:" in annotations["description"] or name == "LicenseEdgeTelemetryMissing", name
        path, _, anchor = annotations["runbook"].partition("#")
        assert path == "deploy/README.md" and anchor in anchors, f"{name}: no section #{anchor}"


def test_every_rule_reads_metrics_that_something_produces(collector):
    known = known_metrics(collector)
    for name, expr in rule_expressions():
        assert promql_selectors(expr), f"{name}: reads no metric"
        assert unknown_references(expr, known) == [], (name, expr)


def test_code_alerts_read_the_request_log_and_probe_alerts_the_probes():
    rules = alerts()
    for name, code in (("LicenseEdgeRevocationUnavailable", "revocation_unavailable"),
                       ("LicenseEdgeSeatRefusalSpike", "no_seats_available")):  # fmt: skip
        assert f'code="{code}"' in rules[name]["expr"], name
    for name, module in (("LicenseEdgePostgresUnreachable", "db"), ("LicenseEdgeReadinessProbeDown", "ready")):
        selectors = dict(promql_selectors(rules[name]["expr"]))
        assert selectors["probe_success"]["module"] == ("=", module), name


def test_the_reference_check_catches_what_it_should(collector):
    # Guards on the checker the two tests above and the dashboard's rely on.
    known = known_metrics(collector)
    assert unknown_references('sum(rate(http_requests_total{code="500"}[5m]))', known)
    assert unknown_references('rate(traces_span_metrics_calls_total{http_status="500"}[5m])', known)
    assert unknown_references("rate(traces_span_metrics_calls[5m])", known), "no _total"
    assert unknown_references('license_edge_responses_total{organization_id="x"}', known)
    assert not unknown_references(
        'sum by (le) (rate(traces_span_metrics_duration_seconds_bucket{http_route="/x"}[5m] offset 1h)) > 1 and on () up',
        known,
    )
    assert [m for m, _ in promql_selectors('a{b="c"} or d + on (e) group_left (f) g')] == ["a", "d", "g"]


# --- The collector ----------------------------------------------------------------------------

PIPELINE_PARTS = {"receivers": "receivers", "processors": "processors", "exporters": "exporters"}
# What each connector we use takes and gives (the connectors' READMEs: spanmetrics traces ->
# metrics; count logs, spans, metrics -> metrics).
CONNECTOR_TYPES = {"spanmetrics": ({"traces"}, {"metrics"}), "count": ({"logs", "traces", "metrics"}, {"metrics"})}


def test_every_pipeline_uses_only_defined_components_and_every_component_is_used(collector):
    pipelines = collector["service"]["pipelines"]
    assert pipelines
    connectors = set(collector.get("connectors") or {})
    used = {part: set() for part in PIPELINE_PARTS}
    for pipeline_name, pipeline in pipelines.items():
        signal = pipeline_name.split("/")[0]
        assert signal in ("traces", "metrics", "logs"), pipeline_name
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_name
        for part in PIPELINE_PARTS:
            for component in pipeline.get(part, []):
                defined = set(collector.get(part) or {})
                if part in ("receivers", "exporters"):
                    defined |= connectors
                assert component in defined, f"{pipeline_name}: {part} {component} is not defined"
                used[part].add(component)
                if component in connectors:
                    takes, gives = CONNECTOR_TYPES[component.split("/")[0]]
                    assert signal in (takes if part == "exporters" else gives), (pipeline_name, component)
    for part in PIPELINE_PARTS:
        unused = set(collector.get(part) or {}) - used[part]
        assert not unused, f"{part} defined but in no pipeline: {unused}"
    # A connector joins two pipelines: exporter of one, receiver of another.
    for connector in connectors:
        assert connector in used["exporters"] and connector in used["receivers"], connector
    assert set(collector["service"].get("extensions", [])) == set(collector.get("extensions") or {})


def test_the_collector_turns_spans_and_request_lines_into_prometheus_metrics(collector):
    metrics = collector_metrics(collector)
    calls = metrics["traces_span_metrics_calls_total"]
    assert {"http_route", "http_response_status_code", "http_request_method", "db_system"} <= calls
    assert "traces_span_metrics_duration_seconds_bucket" in metrics
    # No identifier becomes a label: one series per license or request would swamp Prometheus.
    responses = metrics["license_edge_responses_total"]
    assert {"route", "status", "code"} <= responses
    assert not responses & {"request_id", "organization_id", "license_id", "session_id"}
    assert not calls & {"url_path", "url_query", "network_peer_address", "client_address"}
    # The metrics pipeline ends in the Prometheus exporter; the traces pipeline feeds spanmetrics.
    pipelines = collector["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert "spanmetrics" in pipelines["traces"]["exporters"]
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(f":{OTLP_HTTP_PORT}")
    # The request log: this namespace's SpinApp pods only, JSON lines only.
    (include,) = collector["receivers"]["filelog/requests"]["include"]
    assert include.startswith("/var/log/pods/${env:POD_NAMESPACE}_license-edge-"), include


def container_port(workload: dict, name: str) -> int:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return port


def test_the_collector_pods_serve_what_the_configuration_listens_on(collector, monitoring_docs):
    daemonset = one(monitoring_docs, "DaemonSet", "license-edge-otel-collector")
    metrics_port = int(collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1])
    assert container_port(daemonset, "metrics") == metrics_port
    assert container_port(daemonset, "otlp-http") == OTLP_HTTP_PORT
    health_port = int(collector["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    assert container_port(daemonset, "health") == health_port
    spec = daemonset["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert re.fullmatch(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", container["image"])
    # The configuration it reads is otelcol.yaml, from the generated ConfigMap.
    (config_arg,) = [a for a in container["args"] if a.startswith("--config=")]
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_map = one(monitoring_docs, "ConfigMap", volumes["config"]["configMap"]["name"])
    assert config_arg == f"--config={mount['config']}/otelcol.yaml"
    assert yaml.safe_load(config_map["data"]["otelcol.yaml"]) == collector
    # The request log's files, read-only, and the namespace the include pattern names.
    assert volumes["pod-logs"]["hostPath"]["path"] == mount["pod-logs"] == "/var/log/pods"
    assert all(m.get("readOnly") for m in container["volumeMounts"])
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    # Prometheus finds every collector through the headless Service.
    headless = one(monitoring_docs, "Service", "license-edge-otel-collector-metrics")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in headless["spec"]["ports"]] == [metrics_port]


@pytest.mark.parametrize("env", ENVS)
def test_the_executor_sends_spins_telemetry_to_the_collector(apps, env, collector):
    executor = one(apps[env], "SpinAppExecutor")
    otel = executor["spec"]["deploymentConfig"]["otel"]
    assert set(otel) <= OTEL_CONFIG_FIELDS, set(otel) - OTEL_CONFIG_FIELDS
    # Traces only: the combined endpoint would also turn on Spin's OTLP metrics and log export
    # (spin v3.6.3, crates/telemetry/src/env.rs), which the collector has no pipeline for.
    assert set(otel) == {"exporter_otlp_traces_endpoint"}, otel
    url = urlsplit(otel["exporter_otlp_traces_endpoint"])
    # Spin 3.6 defaults to OTLP over HTTP/protobuf: the collector's 4318, plain HTTP in-cluster;
    # a signal's own endpoint is used as written, so it names the traces path.
    assert url.scheme == "http" and url.path == "/v1/traces", url
    assert set(collector["service"]["pipelines"]) >= {"traces"}
    service = one(apps[env], "Service", url.hostname)
    assert [p["port"] for p in service["spec"]["ports"]] == [url.port] == [OTLP_HTTP_PORT]
    daemonset = one(apps[env], "DaemonSet", "license-edge-otel-collector")
    selector = service["spec"]["selector"]
    assert selector.items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
    # Same namespace, so the short name resolves.
    assert service["metadata"]["namespace"] == executor["metadata"]["namespace"]


# --- The probes -------------------------------------------------------------------------------


def test_blackbox_exporter_accepts_its_modules():
    run_tool([blackbox_exporter(), f"--config.file={BLACKBOX_CONFIG}", "--config.check"])


def test_probes_ask_the_health_routes_through_the_public_service(monitoring_docs):
    modules = load_yaml(BLACKBOX_CONFIG)["modules"]
    (job,) = [j for j in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"] if j["job_name"] == "license-edge-probe"]
    assert job["metrics_path"] == "/probe"
    probed = {}
    for static in job["static_configs"]:
        module = static["labels"]["__param_module"]
        assert module in modules, module
        assert modules[module]["timeout"] == "5s"
        assert modules[module]["http"]["valid_status_codes"] == [200]
        for target in static["targets"]:
            url = urlsplit(target)
            assert url.hostname.startswith("license-edge."), target  # Service license-edge
            probed[static["labels"]["module"]] = url.path
    assert probed == {"db": DB_HEALTH_PATH, "ready": READINESS_PATH}
    # The scrape goes to the blackbox exporter's Service, on its port.
    (address,) = [r["replacement"] for r in job["relabel_configs"] if r.get("target_label") == "__address__"]
    host, port = address.rsplit(":", 1)
    service = one(monitoring_docs, "Service", host.split(".")[0])
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    (collector_job,) = [j for j in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"] if j["job_name"] == "license-edge-otel-collector"]
    (sd,) = collector_job["dns_sd_configs"]
    assert sd["names"][0].split(".")[0] == "license-edge-otel-collector-metrics"


def probe_paths(doc: dict) -> list[str]:
    """Every HTTP path a Kubernetes probe of this object asks."""
    paths = []
    if doc["kind"] == "SpinApp":
        paths += [c["httpGet"]["path"] for c in doc["spec"].get("checks", {}).values()]
    spec = doc.get("spec", {})
    for holder in (spec, spec.get("jobTemplate", {}).get("spec", {})):
        template = holder.get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in container and "httpGet" in container[probe]:
                    paths.append(container[probe]["httpGet"]["path"])
    return paths


def test_no_kubernetes_probe_asks_the_database_route(rendered):
    # /api/v1/health/db reports PostgreSQL: a readiness probe on it would take every pod, and so
    # validation, out during a PostgreSQL outage; a liveness probe would restart them for nothing.
    asked = set()
    for docs in rendered.values():
        for doc in docs:
            for path in probe_paths(doc):
                asked.add(path)
                assert not path.rstrip("/").startswith("/api/v1/health/db"), (doc["metadata"]["name"], path)
    assert {LIVENESS_PATH, READINESS_PATH} <= asked
    assert probe_paths({"kind": "SpinApp", "spec": {"checks": {"readiness": {"httpGet": {"path": DB_HEALTH_PATH}}}}})


# --- The dashboard ----------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_with_one_datasource_variable(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len(panels) >= 8
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["type"] in ("timeseries", "stat", "gauge", "table", "bargauge"), panel["type"]
        assert panel["title"]
        # Every query goes to the chosen Prometheus: no datasource uid of one Grafana.
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target["datasource"] == DATASOURCE and target["expr"].strip()
    # Panels do not overlap.
    cells = set()
    for panel in panels:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


def test_dashboard_queries_read_metrics_that_something_produces(dashboard, collector):
    known = known_metrics(collector)
    for where, expr in dashboard_expressions(dashboard):
        assert promql_selectors(expr), where
        assert unknown_references(expr, known) == [], (where, expr)


def test_dashboard_queries_parse(dashboard, tmp_path):
    # promtool parses PromQL when it checks rules: each query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(dashboard_expressions(dashboard))
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    run_tool([promtool(), "check", "rules", str(path)])


def test_dashboard_shows_every_alerts_signal(dashboard):
    # Whatever an alert reads, a panel shows (directly or through the same recording rule).
    shown = {m for _, expr in dashboard_expressions(dashboard) for m, _ in promql_selectors(expr)}
    for name, rule in alerts().items():
        if name == "LicenseEdgeTelemetryMissing":
            continue
        read = {m for m, _ in promql_selectors(rule["expr"])}
        assert read & shown, f"{name} reads {read}, which no panel shows"
