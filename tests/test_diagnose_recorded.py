"""diagnose on recorded series (the path large clusters take): the follow-up query.

With the recording rules deployed, baselines and the checks gated by a threshold are read only for the
pods the first queries found (a pod matcher built from their answers). The rules' history is
backfilled into a real Prometheus with promtool (inferwatch/sandbox/backfill.py); the diagnosis must
name the same causes, entities and numbers as the raw-series diagnosis of the same data.
"""
from __future__ import annotations

import re

import pytest
from conftest import openmetrics_of
from test_diagnose import Proxy

from inferwatch.diagnose import engine

from inferwatch.diagnose import graph
from inferwatch.sandbox.backfill import record_history
from inferwatch.sandbox.localprom import LocalPrometheus
from inferwatch.diagnose.planner import Planner
from inferwatch.diagnose.queries import NODE, followup_query, node_query
from inferwatch.diagnose.screen import screen_query
from inferwatch.diagnose.scope import Scope, Window
from inferwatch.diagnose.signals import SIGNALS
from inferwatch.sandbox import scenario
from inferwatch.core import promql, schema
from inferwatch.core.config import load_config, parse_config

CFG = load_config(None)
NAME = "diag-two-faults"
COMPUTED = {n for n, spec in SIGNALS.items()
            if any(s.metric in schema.query_time(CFG) for s in promql.selectors(spec.build(CFG)))}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    sc = scenario.load(NAME)
    work = tmp_path_factory.mktemp("recorded")
    prom = record_history(LocalPrometheus(openmetrics_of(NAME), workdir=work).start(), sc.start, sc.end, CFG, work,
                          f"{int(sc.step)}s")
    yield prom
    prom.stop()


def diagnose(url: str, cfg=CFG) -> engine.Report:
    sc = scenario.load(NAME)
    return engine.run(url, Scope(), sc.start + sc.incident_at, "15m", cfg)


def causes(report: dict) -> dict[str, set[str]]:
    return {r["cause"]: {f"{e['pod']}/{e.get('gpu', '')}" for e in r["entities"]} for r in report["root_causes"]}


def test_recorded_diagnosis_names_what_the_raw_one_names(recorded, scenario_prometheus):
    rec = diagnose(recorded.url)
    raw = diagnose(scenario_prometheus(NAME).url).to_dict()
    got = rec.to_dict()
    modes = {name: v["mode"] for name, v in got["sources"].items()}
    # signals of records computed at query time (GPU fields joined to the recorded per-GPU info, pod
    # means, unrecorded histograms) are read raw; the rest is recorded
    assert {m for n, m in modes.items() if n not in COMPUTED} == {"recorded", "missing"}
    assert {modes[n] for n in COMPUTED if n in modes} <= {"raw", "missing"} and "raw" in modes.values()
    assert got["errors"] == [] and got["status"] == raw["status"] == "degraded"
    assert causes(got) == causes(raw) and "gpu_hardware_fault" in causes(got)
    assert got["nodes"] == raw["nodes"]
    # one follow-up at most, whatever the number of anomalous pods
    assert rec.queries <= len(graph.NODES) + 3 and "follow-up" in rec.timings
    fault = next(r for r in got["root_causes"] if r["cause"] == "gpu_hardware_fault")
    xid = {e["against"]: e for e in fault["evidence"] if e["signal"] == "xid"}
    assert xid["baseline"]["value"] > 0 and xid["baseline"]["reference"] == 0  # read for the screened GPUs


def test_followup_reads_only_the_candidate_pods():
    win = Window(at=1_767_232_200, window=900, baseline=3600, step=60)
    names = {"llm_gpu:xid_last:max", "llm_gpu:remapped_rows_uncorrectable:max"}
    q = node_query(CFG, Planner(CFG, Scope(), names), graph.BY_ID["gpu_hardware_fault"], win)
    assert "quantile_over_time" not in q.text  # the baselines wait for the candidates
    hostile = (("namespace", "llm"), ("pod", 'a.b|c"\\\n'))
    text = followup_query(CFG, [(q, {hostile, (("namespace", "llm"), ("pod", "chat-1"))})])
    assert 'pod=~"a\\\\.b\\\\|c\\"\\\\\\\\\\nchat-1"' not in text  # alternatives stay apart
    assert 'pod=~"a\\\\.b\\\\|c\\"\\\\\\\\\\n|chat-1"' in text and NODE in text
    assert followup_query(CFG, [(q, set())]) is None


def test_a_failed_followup_marks_only_its_nodes(recorded):
    cfg = parse_config("diagnose: {query_timeout: 3s, deadline: 20s}")  # margin for the first queries
    with Proxy(recorded.url, stall=NODE) as proxy:
        report = diagnose(proxy.url, cfg).to_dict()
    failed = {e["node"] for e in report["errors"]}
    assert "queue_backlog" in failed and not failed & {"kv_cache_pressure", "gpu_hardware_fault"}
    assert all(e["error"].startswith("follow-up query") for e in report["errors"])
    # a screened GPU node reads its GPUs beside the follow-up, not in it
    assert report["status"] == "degraded"
    assert {"kv_cache_pressure", "gpu_hardware_fault"} <= {r["cause"] for r in report["root_causes"]}


def test_charts_on_recorded_series_read_only_the_findings_groups(recorded, scenario_prometheus):
    """The HTML report's one extra query: restricted by label matchers, and drawing what the raw one draws."""
    sc = scenario.load(NAME)
    at = sc.start + sc.incident_at
    rec = engine.run(recorded.url, Scope(), at, "15m", CFG, charts=True)
    raw = engine.run(scenario_prometheus(NAME).url, Scope(), at, "15m", CFG, charts=True)
    assert rec.queries == diagnose(recorded.url).queries + 1
    lines = lambda r: {c.node: sorted((tuple(sorted(l.entity.items())), l.faulty) for l in c.lines)  # noqa: E731,E741
                       for c in r.charts}
    assert lines(rec) == lines(raw) and "gpu_hardware_fault" in lines(rec)
    gpu = next(c for c in rec.charts if c.node == "gpu_hardware_fault")
    # a GPU field computed at query time: the raw field joined to the per-GPU info, which the matcher reaches
    assert "DCGM_FI_DEV_XID_ERRORS" in gpu.expr and re.search(r'llm_gpu:info{[^}]*workload_name=~"chat"', gpu.expr)
    kv = next(c for c in rec.charts if c.node == "kv_cache_pressure")
    assert kv.expr.startswith("llm_pod:kv_cache_usage:max{") and 'workload_name=~"chat"' in kv.expr


def test_the_rules_record_less_than_half_of_what_they_read(recorded):
    """A small fleet (a few pods of one model): the recorded series stay under half of the raw series, as
    docs/benchmarks.md reports for the synthetic clusters."""
    sc = scenario.load(NAME)
    at = sc.start + sc.incident_at
    written = recorded.query('count({__name__=~"llm_.+"})', at)
    read = recorded.query('count({__name__=~"vllm:.+|sglang:.+|DCGM_.+|http_requests_total"})', at)
    assert written and read
    assert 0 < float(written[0]["value"][1]) <= 0.5 * float(read[0]["value"][1]), (written, read)


WIN = Window(at=1_767_232_200, window=900, baseline=3600, step=60)


def screen(node: str, present: set[str], cfg=CFG) -> str:
    planner = Planner(cfg, Scope(), present)
    text = screen_query(cfg, node_query(cfg, planner, graph.BY_ID[node], engine.node_frame(WIN, graph.BY_ID[node])))
    assert text is not None
    return text


def test_gpu_fault_screens_read_the_sparse_records_once_the_rules_are_deployed():
    """With the GPU records deployed (their dense `llm_gpu_id:sm_clock_mhz:max` seen), the hardware and memory
    screens read the records of the GPUs past a floor (core/records.py gpu_high), even where none exist
    (no GPU past the floor), instead of a raw field of every GPU; without them, the raw fields."""
    raw = {"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE",
           "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK"}
    deployed = raw | {"llm_gpu:info", "llm_gpu:owner:info", "llm_gpu_id:sm_clock_mhz:max", "llm_gpu:xid_last:high"}
    hardware = screen("gpu_hardware_fault", deployed)
    assert "llm_gpu:xid_last:high" in hardware and "llm_gpu:row_remap_failure:high" in hardware
    assert "DCGM_FI_DEV" not in hardware
    memory = screen("gpu_memory_pressure", deployed)
    assert "llm_gpu:fb_used:high" in memory and "DCGM_FI_DEV" not in memory
    undeployed = deployed - {"llm_gpu_id:sm_clock_mhz:max", "llm_gpu:xid_last:high"}  # an older release's rules
    assert "DCGM_FI_DEV_XID_ERRORS" in screen("gpu_hardware_fault", undeployed)
    assert "DCGM_FI_DEV_FB_USED" in screen("gpu_memory_pressure", undeployed)
    # a diagnosis threshold below the alert's: the floor follows it down (the records keep what both test)
    low = parse_config("diagnose: {thresholds: {fb_used_ratio: 0.9}}")
    assert "> 0.9" in screen("gpu_memory_pressure", deployed, low)


def test_a_recorded_memory_pressure_diagnosis_screens_on_the_fault_record(tmp_path, scenario_prometheus):
    """The framebuffer record holds only the GPU past the floor, and the diagnosis on it names what the
    raw one names."""
    name = "diag-vllm-gpu-memory-pressure"
    sc = scenario.load(name)
    prom = record_history(LocalPrometheus(openmetrics_of(name), workdir=tmp_path).start(), sc.start, sc.end, CFG,
                          tmp_path, f"{int(sc.step)}s")
    try:
        at = sc.start + sc.incident_at
        held = prom.query("count by (exported_pod) (max_over_time(llm_gpu:fb_used:high[1h]))", at)
        assert {s["metric"]["exported_pod"] for s in held} == {"llama-1"}
        rec = engine.run(prom.url, Scope(), at, "15m", CFG).to_dict()
        raw = engine.run(scenario_prometheus(name).url, Scope(), at, "15m", CFG).to_dict()
    finally:
        prom.stop()
    assert rec["errors"] == [] and rec["root_causes"][0]["cause"] == "gpu_memory_pressure"
    assert causes(rec) == causes(raw) and rec["nodes"] == raw["nodes"]
