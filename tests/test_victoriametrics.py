"""Portability: the generated rules on VictoriaMetrics (Debian `victoria-metrics` package).

vmalert must load every generated plain rule file, and the recording rules' expressions (inlined down to
raw series) must give VictoriaMetrics the same answers as Prometheus on the same fixture scenario.
MetricsQL's rate() does not extrapolate, so values are compared with a small relative tolerance.
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from conftest import synthesized
from inferwatch.diagnose import engine
from inferwatch.sandbox.localprom import _find_binary, _Server
from inferwatch.diagnose.scope import Scope
from inferwatch.sandbox import scenario
from inferwatch.core.config import Config, Labels
from inferwatch.generate.writer import render
from inferwatch.core.promql import Matcher, Selector, check, inline, quote
from inferwatch.core import schema

VM_HINT = "run `make setup` (installs the victoria-metrics package: victoria-metrics, vmalert)"
REL_TOL = 1e-6

# (scenario, minutes after start to evaluate at): steady states, away from ramps and the 5m warm-up.
SCENARIOS = [("vllm-kv-cache-pressure", 110), ("norm-sglang-dp-tp", 14)]
KEY_RECORDS = [
    ("llm_pod:requests:rate5m", {}),
    ("llm_pod:requests_waiting:sum", {}),
    ("llm_pod:kv_cache_usage:max", {}),
    ("llm_pod:preemptions:rate5m", {}),
    ("llm_pod:prefix_cache_hit:ratio_rate5m", {}),
    ("llm_pod:ttft_seconds:histogram_quantile_rate5m", {"quantile": "0.99"}),
    ("llm_model:pods:count", {}),
    ("llm_model:requests:rate5m", {}),
    ("llm_model:itl_seconds:histogram_quantile_rate5m", {"quantile": "0.9"}),
    ("llm_model:e2e_latency_seconds:mean_rate5m", {}),
    ("llm_gpu:engine_active:max", {}),
    ("llm_gpu:fb_used:ratio", {}),
]


class LocalVictoriaMetrics(_Server):
    """A single-node VictoriaMetrics on 127.0.0.1 with a throwaway storage dir."""

    _name = "victoria-metrics"

    def _find(self) -> str:
        return _find_binary_with_hint("victoria-metrics")

    def _prepare(self, workdir: Path) -> None:
        (workdir / "data").mkdir(exist_ok=True)

    def _command(self, port: int) -> list[str]:
        assert self.workdir is not None
        return [self._binary, f"-storageDataPath={self.workdir / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y", "-search.disableCache", "-loggerLevel=WARN"]

    def import_series(self, series: list[scenario.Series]) -> None:
        """POST /api/v1/import/prometheus (text format, millisecond timestamps), then flush to search."""
        lines = []
        for labels, samples in series:
            inner = ",".join(f"{k}={quote(v)}" for k, v in labels.items() if k != "__name__")
            prefix = f"{labels['__name__']}{{{inner}}}"
            lines += [f"{prefix} {v!r} {round(t * 1000)}" for t, v in samples]
        r = requests.post(self.url + "/api/v1/import/prometheus", data="\n".join(lines).encode(), timeout=60)
        r.raise_for_status()
        requests.get(self.url + "/internal/force_flush", timeout=30).raise_for_status()

    def query(self, expr: str, time: float) -> list:
        r = requests.get(self.url + "/api/v1/query", params={"query": expr, "time": time}, timeout=30)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"VictoriaMetrics query {expr!r} failed: {body.get('error')}")
        return body["data"]["result"]


def _find_binary_with_hint(name: str) -> str:
    try:
        return _find_binary(name)
    except RuntimeError:
        raise RuntimeError(f"{name} not found on PATH; {VM_HINT}") from None


@pytest.fixture(scope="module")
def victoria():
    """`victoria(name)`: a VictoriaMetrics holding one scenario (scenarios reuse pod names)."""
    started: dict[str, LocalVictoriaMetrics] = {}

    def get(name: str) -> LocalVictoriaMetrics:
        if name not in started:
            started[name] = LocalVictoriaMetrics(None).start()
            started[name].import_series(synthesized(name))
        return started[name]

    yield get
    for vm in started.values():
        vm.stop()


def _by_labels(result: list) -> dict[frozenset, float]:
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in result}


@pytest.mark.parametrize("name,minute", SCENARIOS)
def test_recording_expressions_agree_with_prometheus(name, minute, victoria, scenario_prometheus):
    prom, vm = scenario_prometheus(name), victoria(name)
    at = scenario.load(name).start + minute * 60
    index = schema.records(Config())  # written and query-time records
    compared = 0
    for record, labels in KEY_RECORDS:
        expr = check(inline(Selector(record, tuple(Matcher(k, v) for k, v in labels.items())), index))
        want, got = _by_labels(prom.query(expr, at)), _by_labels(vm.query(expr, at))
        assert want, f"{record}: Prometheus returned nothing for {name}; the comparison would be vacuous"
        assert set(got) == set(want), f"{record}: label sets differ\n prom: {sorted(want)}\n vm:   {sorted(got)}"
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=REL_TOL, abs_tol=1e-9), \
                f"{record}{dict(key)}: Prometheus {value}, VictoriaMetrics {got[key]}"
        compared += len(want)
    assert compared >= len(KEY_RECORDS)


@pytest.mark.parametrize("labels", [Labels(), Labels(cluster="cluster")], ids=["default", "multi-cluster"])
def test_vmalert_loads_every_generated_rule_file(labels, tmp_path):
    vmalert = _find_binary_with_hint("vmalert")
    files = {rel: text for rel, text in render(replace(Config(), labels=labels)).items()
             if rel.startswith("prometheus/rules/")}
    assert files, "no plain rule files generated"
    for rel, text in files.items():
        path = tmp_path / Path(rel).name
        path.write_text(text)
        res = subprocess.run([vmalert, "-dryRun", f"-rule={path}", "-loggerLevel=WARN"],
                             capture_output=True, text=True, timeout=60)
        out = res.stdout + res.stderr
        assert res.returncode == 0 and "no groups found" not in out, f"vmalert rejects {rel}:\n{out[-2000:]}"


def test_vmalert_dry_run_rejects_a_broken_rule(tmp_path):
    """Guards the test above: a dry run that accepted anything would prove nothing."""
    path = tmp_path / "broken.rules.yaml"
    path.write_text("groups:\n- name: broken\n  rules:\n  - record: a:b\n    expr: sum(rate(x[5m])\n")
    res = subprocess.run([_find_binary_with_hint("vmalert"), "-dryRun", f"-rule={path}", "-loggerLevel=WARN"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "broken" in res.stdout + res.stderr


@pytest.mark.parametrize("name", ["vllm-kv-cache-pressure", "diag-sglang-kv-cache-pressure"])
def test_diagnose_names_the_same_root_cause_on_victoriametrics(name, victoria, scenario_prometheus):
    """diagnose only speaks the Prometheus HTTP API, so VictoriaMetrics must lead it to the same cause."""
    sc = scenario.load(name)
    reports = {kind: engine.run(target.url, Scope(), sc.start + sc.incident_at, "15m", Config()).to_dict()
               for kind, target in (("prometheus", scenario_prometheus(name)), ("victoriametrics", victoria(name)))}
    for kind, report in reports.items():
        assert report["errors"] == [], f"{kind}: {report['errors']}"
        top = report["root_causes"][0]
        assert top["cause"] == sc.expect["top_cause"], f"{kind}: {[r['cause'] for r in report['root_causes']]}"
        assert {e["pod"] for e in top["entities"]} == set(sc.expect["pods"]), kind
    causes = {kind: [r["cause"] for r in report["root_causes"]] for kind, report in reports.items()}
    assert causes["victoriametrics"] == causes["prometheus"]
