"""The committed output under rules/ is valid, complete, deterministic and current.

Runs the real `inferwatch` entry point and promtool; nothing is mocked.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import promql_parser
import yaml

from inferwatch.core.config import Config, Duration
from inferwatch.generate.docs import render_schema
from inferwatch.generate.writer import render
from inferwatch.core import promql, schema
from inferwatch.core.records import recording_groups
from inferwatch.core.rules import RecordingRule
from inferwatch.generate.writer import rule_groups

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules"
PLAIN = sorted((RULES / "prometheus" / "rules").glob("*.rules.yaml"))
INFERWATCH = [sys.executable, "-m", "inferwatch.cli"]
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-zA-Z0-9_]+(:[a-zA-Z0-9_]+)?$")  # level:metric[:operations]


def inferwatch(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*INFERWATCH, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})})


def plain_rules() -> list[dict]:
    return [r for path in PLAIN for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def test_promtool_check_rules_passes_on_every_plain_file():
    assert PLAIN, "no plain rule files under rules/prometheus/rules"
    res = subprocess.run(["promtool", "check", "rules", *map(str, PLAIN)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(PLAIN), res.stdout


def test_prometheus_rule_objects_hold_exactly_the_plain_groups():
    for path in PLAIN:
        base = path.name.removesuffix(".rules.yaml")
        obj = yaml.safe_load((RULES / "kubernetes" / f"prometheusrule-{base}.yaml").read_text())
        assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
        assert obj["metadata"]["name"] == base
        assert obj["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"], base
    objects = sorted((RULES / "kubernetes").glob("prometheusrule-*.yaml"))
    assert len(objects) == len(PLAIN)


def test_every_expression_parses():
    rules = plain_rules()
    assert rules
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises on any syntax error


def test_record_names_follow_the_convention_and_never_use_engine_prefixes():
    records = [r["record"] for r in plain_rules() if "record" in r]
    assert records
    assert not [r for r in records if r.startswith(("vllm:", "sglang:"))]
    normalized = {r.record for g in recording_groups(Config()) for r in g.rules}
    # levels: a pod, a model, a GPU with its pod and model labels, a GPU by its own id (core/records.py GPU_BY_ID)
    assert not [r for r in normalized if not RECORD_NAME.match(r) or not r.startswith(("llm_pod:", "llm_model:",
                                                                                          "llm_gpu:", "llm_gpu_id:"))]


def test_no_written_rule_reads_a_record_computed_at_query_time():
    """Query-time records are inlined into every rule that reads them: no rule file names one."""
    groups = rule_groups(Config())
    later = set(schema.query_time(Config()))
    assert later and not later & {r.record for g in groups for r in g.rules if isinstance(r, RecordingRule)}
    assert not later & {s.metric for g in groups for r in g.rules for s in promql.selectors(r.expr)}


def test_model_histograms_run_in_their_own_group_never_faster_than_the_cycle():
    """Bucket, sum and count rates and their quantiles and means move to `inferwatch-model-histograms`,
    every `recording.histogram_interval` but never more often than `recording.interval`; no rule of the
    every-cycle model group reads them (it would see a value up to one histogram interval old)."""
    for interval, every, expected in (("30s", "1m", "1m"), ("30s", "30s", "30s"), ("2m", "1m", "2m")):
        cfg = replace(Config(), recording=replace(Config().recording, interval=Duration(interval),
                                                  histogram_interval=Duration(every)))
        groups = {g.name: g for g in recording_groups(cfg)}
        hist, model = groups["inferwatch-model-histograms"], groups["inferwatch-model"]
        assert (hist.interval, model.interval) == (expected, interval)
        written = {r.record for r in hist.rules}
        assert {"llm_model:ttft_seconds_bucket:rate5m", "llm_model:ttft_seconds_count:rate5m",
                "llm_model:itl_seconds:histogram_quantile_rate5m", "llm_model:e2e_latency_seconds:mean_rate5m"} <= written
        assert not any(r.record in written for r in model.rules)
        assert not written & {s.metric for r in model.rules for s in promql.selectors(r.expr)}


def test_subqueries_only_replay_recorded_series():
    """A subquery re-evaluates its body at every step: over raw series (an inlined record read over time)
    it would cost a rule that many evaluations each cycle; GPU_BY_ID fields are recorded for that."""
    groups = rule_groups(Config())
    written = {r.record for g in groups for r in g.rules if isinstance(r, RecordingRule)}
    subqueries = []
    for g in groups:
        for r in g.rules:
            promql.walk(r.expr, lambda e: subqueries.append(e) if isinstance(e, promql.Subquery) else None)
    assert subqueries and all(s.metric in written for q in subqueries for s in promql.selectors(q))


def test_two_renders_are_byte_identical(tmp_path):
    assert render(Config()) == render(Config())
    # Separate processes with different hash seeds: no set or dict order may leak into the output.
    for seed in ("1", "2"):
        res = inferwatch("generate", "--output", str(tmp_path / seed), env={"PYTHONHASHSEED": seed})
        assert res.returncode == 0, res.stderr
    first, second = tree(tmp_path / "1"), tree(tmp_path / "2")
    assert first and first == second


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_check_passes_on_the_committed_tree():
    res = inferwatch("generate", "--check", "--output", "rules")
    assert res.returncode == 0, f"rules/ is stale; run `inferwatch generate -o rules`:\n{res.stdout}"


def test_check_lists_altered_missing_and_extra_files(tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    altered = copy / "prometheus" / "rules" / "inferwatch-vllm.rules.yaml"
    altered.write_text(altered.read_text().replace("rate5m", "rate1m", 1))
    (copy / "kubernetes" / "podmonitor.yaml").unlink()
    (copy / "stray.yaml").write_text("groups: []\n")
    res = inferwatch("generate", "--check", "--output", str(copy))
    assert res.returncode == 1
    assert res.stdout.splitlines() == [f"stale: {copy / rel}" for rel in
                                       ("kubernetes/podmonitor.yaml", "prometheus/rules/inferwatch-vllm.rules.yaml",
                                        "stray.yaml")]


def test_a_config_error_exits_2_names_file_line_and_key_and_writes_nothing(tmp_path):
    config = tmp_path / "inferwatch.yaml"
    config.write_text("labels:\n  cluster: cluster\nscrape:\n  interval: soon\n")
    out = tmp_path / "out"
    res = inferwatch("generate", "--config", str(config), "--output", str(out))
    assert res.returncode == 2
    assert f"{config}:4: scrape.interval: expected a duration" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()
    # An existing output folder is left exactly as it was.
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "file.yaml").write_text("kept\n")
    config.write_text("backends: [vllm, tgi]\n")
    res = inferwatch("generate", "--config", str(config), "--output", str(out))
    assert res.returncode == 2 and f"{config}:1: backends[1]: unknown backend 'tgi'" in res.stderr
    assert tree(out) == {"keep/file.yaml": b"kept\n"}


def test_docs_schema_is_current(tmp_path):
    assert (REPO / "docs" / "schema.md").read_text() == render_schema(), "run `inferwatch docs`"
    stale = tmp_path / "schema.md"
    stale.write_text("old\n")
    assert inferwatch("docs", "--check", "--output", str(stale)).returncode == 1
    assert inferwatch("docs", "--output", str(stale)).returncode == 0
    assert inferwatch("docs", "--check", "--output", str(stale)).returncode == 0
