"""Hysteresis: values hovering at a threshold fire once and stay firing (alerts-hysteresis, vLLM and SGLang).

A simulated KV pool cut to 30% runs full and its usage hovers around 0.95 (0.93-0.98), and a power-capped
GPU with degraded cooling sits just over 85 °C: the conditions read each value's extreme over
`alerts.hold` (3m), so `for` is not restarted by every dip and the alert does not flap. After the faults
end the alerts end within `hold`.
"""
from __future__ import annotations

import pytest

from test_alerts import DEFAULT, Fires, Quiet, alert_tests, alert_rules, load_as, measured, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-hysteresis"
STEADY = tuple(f"{m}m" for m in range(37, 51))  # every minute once each condition holds and `for` has passed
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("29m",)),
        *[Fires("LLMPodKVCacheSaturated", at, ("hover-0",), None) for at in STEADY],
        *[Fires("LLMGPUThrottled", at, ("hover-1",)) for at in STEADY],
        Quiet("LLMPodKVCacheSaturated", ("57m",)),
        Quiet("LLMGPUThrottled", ("57m",)),
    ],
}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_hovering_values_fire_once_and_stay_firing(tmp_path, engine):
    sc = load_as(NAME, engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(measured(CASES[NAME], sc, series, DEFAULT), sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-4000:]}{res.stderr[-2000:]}"
