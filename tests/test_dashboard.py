"""The Grafana dashboard: every panel query runs on a real Prometheus, for vLLM and SGLang series.

Recording rules only evaluate live, so each panel query is inlined over the rules that record its
series (`promql.inline`) and runs on the backfilled raw series at one instant, with the dashboard
variables set to the scenario's namespace, workload and model. A query must not error; it must return
data where the panel's description claims the backend supports it at that version (default flags and
exporter counters; all of them where the fixture adds the custom dcgm-exporter counters), and nothing
where it claims the backend does not expose it.
"""
from __future__ import annotations

import io
import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
import yaml

from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.core import schema
from inferwatch.generate import dashboard
from inferwatch.core import promql
from inferwatch.sandbox import scenario
from inferwatch.core.config import Config, parse_config
from inferwatch.core.signals import GPU

CFG = Config()
SCENARIOS = [  # (fixture, version override): old versions check the "since" claims too
    ("demo-incident", None), ("demo-incident", "0.8"), ("demo-sglang", None), ("demo-sglang", "0.4.5")]


@cache
def records():
    return schema.records(CFG)


def load(name: str, version: str | None) -> scenario.Scenario:
    data = yaml.safe_load(scenario.load(name).path.read_text())
    return scenario.from_dict({**data, "version": version} if version else data)


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda p: f"{p[0]}@{p[1] or 'fixture'}")
def loaded(request):
    name, version = request.param
    sc = load(name, version)
    if version is None:  # the fixture as is: share the session's Prometheus with the other tests
        yield sc, request.getfixturevalue("scenario_prometheus")(name)
        return
    buf = io.StringIO()
    write_openmetrics(scenario.synthesize(sc), buf)
    with LocalPrometheus(buf.getvalue()) as prom:
        yield sc, prom


def substitute(expr: promql.Expr, values: dict[str, str]) -> promql.Expr:
    """Grafana's variable interpolation for one selected value: `x=~"$x"` becomes `x="value"`."""
    def swap(node):
        if not isinstance(node, promql.Selector):
            return None
        return replace(node, matchers=tuple(
            promql.Matcher(m.name, values[m.value[1:]], "=") if m.value.startswith("$") else m
            for m in node.matchers))
    return promql.transform(expr, swap)


def every_target():
    for tier, section in dashboard.sections(CFG):
        for panel in section.panels:
            for target in panel.targets:
                yield tier, panel, target


def test_every_panel_query_runs_and_matches_its_support_claim(loaded):
    sc, prom = loaded
    model = sc.models[0]
    values = {CFG.labels.namespace: model.labels["namespace"], CFG.labels.workload: model.labels["workload_name"],
              CFG.labels.model: model.model}
    at = sc.start + (sc.incident_at or sc.duration)
    custom_gpu = sc.dcgm_counters == "custom"  # dcgm-exporter with a custom counters CSV
    missing, unexpected, checked = [], [], 0
    for tier, panel, target in every_target():
        source = schema.GPU_SOURCE if tier == GPU else sc.engine
        version = None if tier == GPU else sc.version
        query = promql.check(promql.inline(substitute(target.expr, values), records()))
        result = prom.query(query, at)  # raises on a query error
        checked += 1
        where = f"{panel.title} / {target.name}"
        demanded = dashboard.available_at(source, target, version) or (
            tier == GPU and custom_gpu and dashboard.target_support(source, target).available)
        if demanded and not result:
            missing.append(where)
        if not dashboard.target_support(source, target).available and result:
            unexpected.append(where)
    assert checked > 50
    assert not missing, f"{sc.engine} {sc.version}: no data for supported panels: {missing}"
    assert not unexpected, f"{sc.engine} {sc.version}: data for panels claimed unsupported: {unexpected}"


def test_variables_filter_other_models_out(scenario_prometheus):
    """The summarize model must not leak into a dashboard filtered on chat."""
    prom, sc = scenario_prometheus("demo-incident"), scenario.load("demo-incident")
    values = {CFG.labels.namespace: "llm", CFG.labels.workload: "chat", CFG.labels.model: sc.models[0].model}
    pods = set()
    for tier, panel, target in every_target():
        if panel.title in ("Requests per pod", "GPU power"):
            query = promql.check(promql.inline(substitute(target.expr, values), records()))
            pods |= {r["metric"][CFG.labels.pod] for r in prom.query(query, sc.start + sc.incident_at)}
    assert pods == {"chat-0", "chat-1", "chat-2"}


def test_outlier_panel_singles_out_the_incident_pod(scenario_prometheus):
    prom, sc = scenario_prometheus("demo-incident"), scenario.load("demo-incident")
    values = {CFG.labels.namespace: "llm", CFG.labels.workload: "chat", CFG.labels.model: sc.models[0].model}
    panel = next(p for _, p, _ in every_target() if p.title.startswith("Outliers"))
    ttft = next(t for t in panel.targets if t.name == "TTFT")  # KV exhaustion queues: TTFT, not ITL
    result = prom.query(promql.check(promql.inline(substitute(ttft.expr, values), records())),
                        sc.start + sc.incident_at)
    ratio = {r["metric"]["pod"]: float(r["value"][1]) for r in result}
    assert ratio["chat-2"] > 2 and max(ratio["chat-0"], ratio["chat-1"]) < 1.5, ratio


def test_alert_annotation_query_runs(scenario_prometheus):
    prom = scenario_prometheus("demo-incident")
    expr = dashboard.alert_annotation(CFG)["expr"].replace("$namespace", "llm")
    assert prom.query(expr) == []  # valid PromQL; no alert ever fired in a backfilled TSDB


def test_descriptions_state_backend_support_from_the_catalogs():
    panels = {p["title"]: p for p in dashboard.dashboard_json(CFG)["panels"]}
    assert "vLLM: yes; SGLang: not exposed" in panels["Finish reasons"]["description"]
    assert "SGLang: >= 0.5.3" in panels["Queue time"]["description"]
    assert "needs --collect-tokens-histogram" in panels["Prompt and generation length"]["description"]
    assert "SM needs custom counters CSV" in panels["GPU activity"]["description"]
    for p in panels.values():
        if p["type"] != "row":
            assert "Backends:" in p["description"] or "Source: dcgm-exporter" in p["description"], p["title"]


def test_dashboard_layout_and_variables():
    d = dashboard.dashboard_json(CFG)
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Model level", "Pod level", "GPU per pod", "Prefill/decode KV transfer", "Speculative decoding",
                    "LoRA adapters"]
    assert not any(p["collapsed"] for p in d["panels"] if p["type"] == "row")  # the default backends have them all
    vllm_only = dashboard.dashboard_json(parse_config("backends: [vllm]\n"))
    collapsed = {p["title"]: len(p["panels"]) for p in vllm_only["panels"] if p["type"] == "row" and p["collapsed"]}
    assert collapsed == {"Prefill/decode KV transfer": 6}  # its panels kept inside the collapsed row
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "namespace", "workload_name", "model_name"]
    cells = [(x, y) for p in d["panels"] for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert d["annotations"]["list"][0]["expr"] == \
        'ALERTS{alertstate="firing", source="inferwatch", namespace=~"$namespace"}'


def test_label_names_and_cluster_come_from_config():
    cfg = parse_config("labels: {namespace: pod_namespace, pod: pod_name, cluster: cluster}\n")
    d = dashboard.dashboard_json(cfg)
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "cluster", "pod_namespace", "workload_name", "model_name"]
    model_ns = d["templating"]["list"][3]["query"]
    assert model_ns == 'label_values(llm_model:pods:count{cluster=~"$cluster", pod_namespace=~"$pod_namespace"}, ' \
                       'workload_name)'
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert all('pod_namespace=~"$pod_namespace"' in e for e in exprs)
    assert not any('namespace=~"$namespace"' in e for e in exprs)
    assert any("on (cluster, pod_namespace, pod_name)" in e for e in exprs)  # GPU join keys


def test_artifacts_json_and_sidecar_configmap_agree():
    files = dashboard.artifacts(CFG)
    body = files["grafana/inferwatch-llm-inference.json"]
    cm = yaml.safe_load(files["kubernetes/grafana-dashboard-inferwatch-llm-inference.yaml"])
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["inferwatch-llm-inference.json"] == body
    assert json.loads(body)["uid"] == "inferwatch-llm-inference"
    assert dashboard.artifacts(CFG) == files  # deterministic


def test_bad_dashboard_uid_is_a_config_error():
    with pytest.raises(ValueError, match="dashboard.uid"):
        parse_config("dashboard: {uid: 'has spaces'}\n", "x.yaml")


def test_every_panel_is_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "dashboard.md").read_text()
    missing = [p.title for _, section in dashboard.sections(CFG) for p in section.panels if f"| {p.title} |" not in doc]
    assert not missing, f"docs/dashboard.md lacks panels: {missing}"
