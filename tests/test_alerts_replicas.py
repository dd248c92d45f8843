"""LLMModelReplicasLost under `promtool test rules` (alerts-lost-replica, replayed on vLLM and SGLang).

A deleted or evicted pod has no target, so no `up == 0`: the alert compares a model's pod count with its
settled level. A rolling update's extra pod and a deliberate scale-down (kube-state-metrics' desired
replicas drop too) must not fire; neither must a model that keeps its pods.
"""
from __future__ import annotations

import pytest

from test_alerts import DEFAULT, Fires, Quiet, alert_rules, alert_tests, load_as, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-lost-replica"
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("29m",)),
        # chat-3's series go stale 5 minutes after it is deleted (promtool has no staleness markers), then
        # `for: 2m`; exactly chat fires, never roll (rolling update), scaled (scale-down) or solo.
        Quiet("LLMModelReplicasLost", ("34m", "36m")),
        *[Fires("LLMModelReplicasLost", at, ("chat",), 1) for at in ("39m", "50m", "1h10m", "1h29m")],
        Quiet("LLMPodTargetDown", ("50m", "1h29m")),  # no target is down: the pod is gone
    ],
}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_lost_replicas_fire_without_a_target_down(tmp_path, engine):
    sc = load_as(NAME, engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(CASES[NAME], sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-6000:]}{res.stderr[-2000:]}"
