"""bench/rulesets.py: the floor (one rate() of every raw series the rules rate, one sample of every other
raw series they read) and the same floor as a rule set, which bench_rules measures like the shipped rules."""
from __future__ import annotations

import subprocess

import yaml

from bench import rulesets
from inferwatch.core.config import Config
from inferwatch.core.promql import Selector, agg, rate, walk
from inferwatch.core.rules import RecordingRule, RuleGroup


def _groups() -> tuple[RuleGroup, ...]:
    """Two tiers: a record rating a counter and reading a gauge, and a rule reading that record."""
    first = RecordingRule("job:a:rate5m", agg("sum", rate(Selector("a_total"), "5m")) + agg("sum", Selector("b")))
    second = RecordingRule("job:a:doubled", Selector("job:a:rate5m") * 2)
    return (RuleGroup("g", "30s", (first, second), "g"),)


def _names(s: Selector) -> list[str]:
    """The metric names a floor selector reads: its name, or the alternatives of its `__name__` regex."""
    return [s.metric] if s.metric else next(m.value for m in s.matchers if m.name == "__name__").split("|")


def test_the_floor_rates_counters_samples_gauges_and_skips_records() -> None:
    floor = rulesets.floor(_groups(), "5m")
    assert [e.render() for e in floor.rated] == ["rate(a_total[5m])"]
    assert floor.sampled is not None and floor.sampled.render() == '{__name__=~"b"}'


def test_the_floor_as_rules_counts_what_each_floor_expression_selects(tmp_path) -> None:
    """promtool evaluates the floor's rule group on three raw series: one count per floor expression."""
    floor_set = rulesets.floor_rules(rulesets.floor(_groups(), "5m"), "30s")
    (rule_file,) = floor_set.write(tmp_path / "rules")
    tests = {"rule_files": [str(rule_file)], "evaluation_interval": "30s", "tests": [{
        "interval": "30s",
        "input_series": [{"series": 'a_total{pod="p1"}', "values": "0+30x20"},
                         {"series": 'a_total{pod="p2"}', "values": "0+60x20"},
                         {"series": 'b{pod="p1"}', "values": "1x20"}],
        "promql_expr_test": [{"expr": "inferwatch_floor:expr_0", "eval_time": "6m",
                              "exp_samples": [{"labels": "inferwatch_floor:expr_0", "value": 2}]},
                             {"expr": "inferwatch_floor:expr_1", "eval_time": "6m",
                              "exp_samples": [{"labels": "inferwatch_floor:expr_1", "value": 1}]}]}]}
    path = tmp_path / "floor.test.yaml"
    path.write_text(yaml.safe_dump(tests))
    res = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_shipped_rules_floor_covers_every_raw_metric_they_read() -> None:
    """Every raw metric a layered rule selects is in one floor rule, so the floor run reads all of them."""
    layered = rulesets.layered(Config(), "30s")
    floor = rulesets.floor(layered.groups, "5m")
    (group,) = rulesets.floor_rules(floor, "30s").groups
    recorded = {r.record for g in layered.groups for r in g.rules if isinstance(r, RecordingRule)}
    raw: set[str] = set()
    for g in layered.groups:
        for r in g.rules:
            walk(r.expr, lambda e: raw.add(e.metric) if isinstance(e, Selector) and e.metric not in recorded else None)
    covered: set[str] = set()
    for r in group.rules:
        walk(r.expr, lambda e: covered.update(_names(e)) if isinstance(e, Selector) else None)
    assert raw and covered == raw
    assert len({r.record for r in group.rules}) == len(group.rules) == len(floor.exprs())
