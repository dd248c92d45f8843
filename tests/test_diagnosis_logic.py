"""Pure logic of the diagnosis, no Prometheus: detectors, evidence from query answers, the walk and ranking.

The end-to-end tests (test_diagnose.py) prove the wiring on real Prometheus data; these pin down the rules
the walk follows: which causes are roots, which are explained by an earlier cause beneath them, and how
roots are ordered.
"""
from __future__ import annotations

import pytest

from inferwatch.core.config import Config
from inferwatch.diagnose import graph
from inferwatch.diagnose.detectors import Check, all_of, any_of, evaluate, gates, not_
from inferwatch.diagnose.evidence import Evidence, Finding, NodeResult, detect, linked
from inferwatch.diagnose.queries import PART
from inferwatch.diagnose.ranking import AFTER_SYMPTOM_FACTOR, tolerance, walk
from inferwatch.diagnose.scope import Window, pod_key

CFG = Config()
STEP = 30.0
TOL = tolerance(CFG, STEP)
MODEL = {"namespace": "llm", "workload_name": "chat", "backend": "vllm", "model_name": "m"}


def pod(name: str, **extra: str) -> dict[str, str]:
    return {**MODEL, "pod": name, **extra}


def gpu(pod_name: str, index: str) -> dict[str, str]:
    return {"namespace": "llm", "pod": pod_name, "hostname": "node-1", "gpu": index, "UUID": f"GPU-{pod_name}-{index}",
            "workload_name": "chat", "backend": "vllm"}


def finding(tier: str, labels: dict[str, str], onset: float, persistence: float = 1.0) -> Finding:
    return Finding(tier, labels, onset, persistence, [Evidence("x", ">", "threshold", 2.0, 1.0, "")])


def results(**findings: list[Finding]) -> dict[str, NodeResult]:
    out = {n.id: NodeResult(n, "normal") for n in graph.NODES}
    for node_id, fs in findings.items():
        out[node_id] = NodeResult(graph.BY_ID[node_id], "anomalous", fs)
    return out


def models_of(*pods: str) -> dict:
    return {pod_key(CFG, pod(p)): {"m"} for p in pods}


# ---- detectors -----------------------------------------------------------------------------------------

def test_evaluate_combines_checks_and_treats_missing_data_as_unknown():
    c = Check("waiting", ">", "threshold", 1.0)
    rule = all_of(c, any_of(c, not_(c)))
    answers = {0: True, 1: None, 2: False}
    assert evaluate(rule, lambda i: answers[i]) is True  # None is ignored; not False is True
    assert evaluate(rule, lambda i: {0: False, 1: True, 2: True}[i]) is False
    assert evaluate(any_of(c, c), lambda i: None) is None


def test_gates_defer_only_checks_beside_a_threshold_in_the_same_all():
    rule = all_of(Check("a", ">", "threshold", 1.0), Check("a", ">", "baseline"),
                  any_of(Check("b", ">", "baseline")))
    assert gates(rule) == {1: (0,)}
    assert gates(any_of(Check("a", ">", "threshold", 1.0), Check("a", ">", "baseline"))) == {}


# ---- evidence ------------------------------------------------------------------------------------------

WIN = Window(at=1000.0, window=300.0, baseline=600.0, step=STEP)


def series(part: str, labels: dict[str, str], points: dict[int, float]) -> dict:
    return {"metric": {**labels, PART: part}, "values": [[t, str(v)] for t, v in sorted(points.items())]}


def test_detect_needs_every_check_of_an_all_and_reports_onset_persistence_and_evidence():
    node = graph.BY_ID["kv_cache_pressure"]  # kv_usage > threshold and preemptions > threshold
    late = {t: 0.99 for t in range(760, 1001, 30)}
    answer = [series("c0", pod("chat-1"), late), series("c1", pod("chat-1"), {t: 2.0 for t in late}),
              series("c0", pod("chat-2"), late)]  # chat-2: KV full but no preemptions
    result = detect(CFG, node, WIN, answer, {"kv_usage", "preemptions"}, models_of("chat-1", "chat-2"))
    assert result.state == "anomalous"
    [f] = result.findings
    assert f.labels["pod"] == "chat-1" and f.onset == 760
    assert f.persistence == pytest.approx(9 / 10)
    kv = next(e for e in f.evidence if e.signal == "kv_usage")
    assert kv.value == pytest.approx(0.99) and kv.reference == CFG.diagnose.thresholds.kv_cache_usage


def test_detect_ignores_short_blips_and_points_before_the_window():
    node = graph.BY_ID["queue_backlog"]  # waiting > threshold and waiting > baseline
    before = {t: 9.0 for t in range(400, 700, 30)}
    blip = {1000: 9.0}  # 1 of 10 window points: below min_persistence
    answer = [series("c0", pod("chat-1"), {**before, **blip}), series("c1", pod("chat-1"), {**before, **blip})]
    result = detect(CFG, node, WIN, answer, {"waiting"}, models_of("chat-1"))
    assert result.state == "normal" and not result.findings


def test_detect_without_the_metrics_is_no_data_not_normal():
    result = detect(CFG, graph.BY_ID["kv_cache_pressure"], WIN, [], set(), {})
    assert result.state == "no_data"


def test_a_gpu_is_linked_to_the_models_its_pod_serves_only():
    g = gpu("chat-1", "0")
    assert linked(CFG, "gpu", g, "pod", pod("chat-1"), models_of("chat-1"))
    assert not linked(CFG, "gpu", g, "pod", pod("chat-2"), models_of("chat-1", "chat-2"))
    other_model = {pod_key(CFG, pod("chat-1")): {"other"}}
    assert not linked(CFG, "gpu", g, "pod", pod("chat-1"), other_model)


# ---- walk and ranking ----------------------------------------------------------------------------------

def test_an_earlier_cause_beneath_explains_the_one_above_it():
    found = results(ttft_high=[finding("model", MODEL, 300)],
                    queue_backlog=[finding("pod", pod("chat-1"), 200)],
                    kv_cache_pressure=[finding("pod", pod("chat-1"), 100)])
    roots = walk(CFG, graph.build(), found, models_of("chat-1"), STEP)
    assert [r.cause for r in roots] == ["kv_cache_pressure"]
    assert roots[0].paths[0] == ("ttft_high", "kv_cache_pressure")  # the shortest chain through anomalies
    assert roots[0].symptom_onset == 300 and not roots[0].after_symptom


def test_a_cause_that_starts_later_does_not_explain_and_ranks_below():
    found = results(ttft_high=[finding("model", MODEL, 100)],
                    kv_cache_pressure=[finding("pod", pod("chat-1"), 100)],
                    long_prompts=[finding("pod", pod("chat-1"), 100 + 2 * TOL)])
    roots = walk(CFG, graph.build(), found, models_of("chat-1"), STEP)
    assert [r.cause for r in roots] == ["kv_cache_pressure", "long_prompts"]
    late = roots[1]
    assert late.after_symptom and late.score == pytest.approx(graph.BY_ID["long_prompts"].weight
                                                              * AFTER_SYMPTOM_FACTOR * late.findings[0].strength())


def test_a_mechanism_is_explained_by_the_cause_beneath_it_whatever_the_onsets():
    """The queue every overload builds never outranks the specific cause: it becomes its trigger."""
    found = results(ttft_high=[finding("model", MODEL, 100)],
                    queue_backlog=[finding("pod", pod("chat-1"), 100)],
                    kv_cache_pressure=[finding("pod", pod("chat-1"), 100 + 2 * TOL)])
    roots = walk(CFG, graph.build(), found, models_of("chat-1"), STEP)
    assert [r.cause for r in roots] == ["kv_cache_pressure"]


def test_a_cause_on_every_affected_pod_outranks_one_on_a_few():
    found = results(ttft_high=[finding("model", MODEL, 300)],
                    gpu_throttling=[finding("gpu", gpu("chat-1", "0"), 100)],
                    prefix_cache_miss=[finding("pod", pod("chat-1"), 100), finding("pod", pod("chat-2"), 100)])
    roots = walk(CFG, graph.build(), found, models_of("chat-1", "chat-2"), STEP)
    assert [r.cause for r in roots] == ["prefix_cache_miss", "gpu_throttling"]
    strength = roots[0].findings[0].strength()
    assert roots[0].score == pytest.approx(strength, abs=1e-3)
    assert roots[1].score == pytest.approx(strength * 0.75, abs=1e-3)  # covers 1 of the 2 affected pods


def test_causes_unrelated_to_any_symptom_are_not_reported():
    other = {**MODEL, "model_name": "other", "workload_name": "other"}
    found = results(ttft_high=[finding("model", MODEL, 300)],
                    kv_cache_pressure=[finding("pod", {**other, "pod": "other-1"}, 100)])
    assert walk(CFG, graph.build(), found, {pod_key(CFG, {**other, "pod": "other-1"}): {"other"}}, STEP) == []


def test_no_symptom_no_root_cause():
    found = results(kv_cache_pressure=[finding("pod", pod("chat-1"), 100)])
    assert walk(CFG, graph.build(), found, models_of("chat-1"), STEP) == []


def test_pull_mode_exit_code_reports_the_worst_group():
    from inferwatch.diagnose.command import (EXIT_DEGRADED, EXIT_HEALTHY, EXIT_PARTIAL, EXIT_UNKNOWN,
                                             pull_exit)
    assert pull_exit([]) == EXIT_HEALTHY
    assert pull_exit(["healthy", "partial"]) == EXIT_PARTIAL
    assert pull_exit(["partial", "degraded"]) == EXIT_DEGRADED
    assert pull_exit(["unknown", "unknown"]) == EXIT_UNKNOWN
    assert pull_exit(["unknown", "healthy"]) == EXIT_HEALTHY
