"""Hysteresis: values hovering at a threshold fire once and stay firing (alerts-hysteresis, vLLM and SGLang).

KV usage swinging 99% / 88% against 95%, and a GPU at 85 / 84 °C against 85 with its clock down: the
conditions read each value's extreme over `alerts.hold` (3m), so `for` is not restarted by every dip and
the alert does not flap. After the swings stop the alerts end within `hold`.
"""
from __future__ import annotations

import pytest

from test_alerts import DEFAULT, Fires, Quiet, alert_tests, alert_rules, load_as, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-hysteresis"
STEADY = tuple(f"{m}m" for m in range(36, 51))  # every minute once `for: 5m` has passed
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("29m",)),
        *[Fires("LLMPodKVCacheSaturated", at, ("hover-0",), 0.99) for at in STEADY],
        *[Fires("LLMGPUThrottled", at, ("hover-1",)) for at in STEADY],
        Quiet("LLMPodKVCacheSaturated", ("57m",)),
        Quiet("LLMGPUThrottled", ("57m",)),
    ],
}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_hovering_values_fire_once_and_stay_firing(tmp_path, engine):
    sc = load_as(NAME, engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(CASES[NAME], sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-4000:]}{res.stderr[-2000:]}"
