"""Serving-feature cause alerts under `promtool test rules` (alerts-serving-features, vLLM and SGLang).

LoRA adapter slots exhausted (a wider adapter mix on two pods, `--max-loras` cut on one), a speculative
draft-acceptance drop and failing prefill/decode KV transfers fire on exactly the pods concerned, within
a few minutes of the onset, and the KV-transfer alert stays firing every minute once it fires (no flap).
The near misses come close and stay quiet over the whole run: every slot in use with nobody waiting, a
15% acceptance dip, a busier spec model, a sibling keeping its slots, one failed transfer in 500.
"""
from __future__ import annotations

import pytest
import yaml

from test_alerts import DEFAULT, ENGINES, Fires, Quiet, alert_rules, alert_tests, measured, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-serving-features"
NEAR_MISS_PODS = ("full-0", "drafty-0", "busy-0", "slots-0", "decode-1")
ONSET_MIN = 30
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("29m",)),
        # Adapters wait from the first minute after the onset, then `for: 1m`.
        Quiet("LLMPodLoRASlotsExhausted", ("30m",)),
        *[Fires("LLMPodLoRASlotsExhausted", at, (pod,), None) for at in ("33m", "50m")
          for pod in ("mix-0", "mix-1", "slots-1")],
        # The 5m acceptance falls under half its baseline 2-4 minutes in (a rate window catching up).
        Quiet("LLMPodSpecDecodeAcceptanceDrop", ("31m",)),
        *[Fires("LLMPodSpecDecodeAcceptanceDrop", at, (pod,), None) for at in ("35m", "50m")
          for pod in ("spec-0", "spec-1")],
        # 30% of decode-0's transfers fail from 30m: firing by 33m, then every minute to the end.
        Quiet("LLMPodKVTransferFailing", ("30m",)),
        *[Fires("LLMPodKVTransferFailing", f"{m}m", ("decode-0",), None) for m in range(33, 60)],
    ],
}


def near_checks() -> list[dict]:
    """The near misses never fire, yet come close: full-0 runs every slot, drafty's acceptance falls 15%
    below its pre-onset level, busy's arrivals rise 50%, decode-1 fails transfers."""
    pods = "|".join(NEAR_MISS_PODS)
    after, before = f"[{60 - ONSET_MIN - 1}m]", f"[{ONSET_MIN - 10}m] offset {60 - ONSET_MIN}m"
    near = [
        'max_over_time(llm_pod:lora_adapters_running:max{pod="full-0"}' + after + ") >= 4",
        f'min_over_time(llm_pod:spec_accept_rate:ratio_rate5m{{pod="drafty-0"}}{after}) < 0.9 * '
        f'avg_over_time(llm_pod:spec_accept_rate:ratio_rate5m{{pod="drafty-0"}}{before})',
        f'avg_over_time(llm_pod:requests_arrived:rate5m{{pod="busy-0"}}[20m]) > 1.4 * '
        f'avg_over_time(llm_pod:requests_arrived:rate5m{{pod="busy-0"}}{before})',
        f'max_over_time(llm_pod:kv_transfer_failures:rate5m{{pod="decode-1"}}{after}) > 0',
    ]
    fired = f'ALERTS{{alertstate="firing", source="inferwatch", pod=~"{pods}"}}'
    return [{"expr": f"count(max_over_time({fired}[59m]))", "eval_time": "59m", "exp_samples": []},
            *[{"expr": f"count({e})", "eval_time": "59m", "exp_samples": [{"labels": "{}", "value": 1}]}
              for e in near]]


def load(engine: str) -> scenario.Scenario:
    """The scenario on `engine`; the prefill/decode model keeps its `-pd` backend label."""
    data = yaml.safe_load((scenario.FIXTURES / f"{NAME}.yaml").read_text())
    data.update(engine=engine, version=ENGINES[engine])
    for m in data["models"]:
        if m["labels"].get("backend", "").endswith("-pd"):
            m["labels"]["backend"] = f"{engine}-pd"
    return scenario.from_dict(data)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_serving_feature_causes_fire_on_their_pods_only(tmp_path, engine):
    sc = load(engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(measured(CASES[NAME], sc, series, DEFAULT), sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests, near_checks())
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-5000:]}{res.stderr[-2000:]}"
