"""The failure-mode catalog is the one owner of what a failure means: every consumer agrees with it."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from inferwatch.core import failures
from inferwatch.core.config import Config
from inferwatch.diagnose import graph
from inferwatch.diagnose.report import Report
from inferwatch.generate import alerts, routing, runbooks

CFG = Config()


def test_every_cause_has_a_failure_mode_and_every_failure_mode_is_a_cause():
    assert set(graph.CAUSES) == set(failures.BY_ID)


def test_alerts_named_by_failure_modes_exist_and_every_cause_alert_has_one():
    names = {a.name for a in alerts.ALERTS}
    assert set(failures.BY_ALERT) <= names
    cause_alerts = {a.name for a in alerts.ALERTS if a.tier in ("pod", "gpu")}
    assert cause_alerts <= set(failures.BY_ALERT), "a pod/GPU alert that stands for no diagnosis cause"


@pytest.mark.parametrize("mode", failures.FAILURES, ids=lambda m: m.id)
def test_one_remedy_text_reaches_runbooks_and_reports(mode):
    for name in mode.alerts:
        page = runbooks.page(CFG, alerts.BY_NAME[name])
        for items in mode.remedies.values():
            for item in items:
                assert item in page, f"{name}: runbook lacks {item!r}"
    text = mode.remedy_text()
    for items in mode.remedies.values():
        for item in items:
            assert item.replace("`", "") in text or item[0].upper() + item[1:].replace("`", "") in text


def test_inhibit_rules_are_derived_from_the_catalog():
    rules = [r.body for r in routing.inhibit_rules(CFG)]
    for mode in failures.FAILURES:
        if mode.inhibits is None:
            continue
        by = mode.inhibits.by
        source = routing.one_of("alertname", by)
        [rule] = [r for r in rules if source in r["source_matchers"]]
        assert routing.one_of("alertname", mode.inhibits.spare, negate=True) in rule["target_matchers"]
        assert rule["equal"] == list(CFG.labels.join_keys())


def test_the_diagnosis_sees_every_condition_an_alert_fires_on_at_defaults():
    for mode in failures.FAILURES:
        for t in mode.thresholds:
            alert_value = getattr(CFG.alerts, t.alert_key)
            diagnose_value = getattr(CFG.diagnose.thresholds, t.diagnose_key)
            assert t.holds(alert_value, diagnose_value), (mode.id, t)


def test_shared_threshold_direction_is_checked():
    t = failures.SharedThreshold("gpu_idle_active", "engine_idle", "<")
    assert t.holds(0.3, 0.35) and not t.holds(0.3, 0.2)
    assert failures.SharedThreshold("a", "b", ">").holds(0.95, 0.9)
    assert not failures.SharedThreshold("a", "b", ">").holds(0.9, 0.95)


def test_shared_threshold_keys_name_real_config_fields():
    alert_fields = {f.name for f in dataclasses.fields(CFG.alerts)}
    diagnose_fields = {f.name for f in dataclasses.fields(CFG.diagnose.thresholds)}
    for mode in failures.FAILURES:
        for t in mode.thresholds:
            assert t.alert_key in alert_fields and t.diagnose_key in diagnose_fields


def test_report_next_step_is_the_catalog_text():
    from inferwatch.diagnose.ranking import RootCause
    from inferwatch.diagnose.evidence import Finding
    f = Finding("pod", {"namespace": "llm", "pod": "p"}, 0.0, 1.0, [])
    root = RootCause("kv_cache_pressure", "pod", 1.0, [f], [("ttft_high", "kv_cache_pressure")], 0.0, 0.0, False)
    report = Report("degraded", {}, 0.0, "15m", [], [root], {}, {}, [], 0, 0.0, CFG)
    [cause] = report.to_dict()["root_causes"]
    assert cause["next_step"] == failures.BY_ID["kv_cache_pressure"].remedy_text()
    assert yaml.safe_dump(cause)  # plain data
