"""GPU alerts that outlive the engine (alerts-gpu-survives, `promtool test rules`).

An XID or a failed row remap often kills the engine: its series vanish while dcgm-exporter keeps
reporting the fault and still attributes the GPU to the pod. The GPU alerts must keep firing with the
pod and model labels for as long as the pod holds the GPU, in both dcgm-exporter label layouts (the Helm
chart's default `exported_pod`, `pod` with honorLabels), and stop once the pod is deleted and the GPU freed.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from test_alerts import DEFAULT, alert_rules, promtool, render_template, write_rules
from inferwatch.sandbox import scenario

MODEL = "Qwen/Qwen2.5-7B-Instruct"


def gpu_of(series: list[scenario.Series], pod: str) -> dict[str, str]:
    """The GPU's labels after the records' relabelling, from the simulated dcgm-exporter series."""
    lb = next(s for s, _ in series if s["__name__"] == "DCGM_FI_DEV_GPU_TEMP"
              and pod in (s.get("exported_pod"), s.get("pod")))
    return {"gpu": lb["gpu"], "UUID": lb["UUID"], "modelName": lb["modelName"],
            "hostname": lb.get("Hostname") or lb["hostname"]}


def expected(alert: str, pod: str, value: float, series) -> dict:
    rule = next(r for r in alert_rules(DEFAULT) if r.alert == alert)
    labels = {"namespace": "llm", "pod": pod, **gpu_of(series, pod), "workload_name": "chat", "backend": "vllm",
              "model_name": MODEL, **rule.labels}
    return {"exp_labels": labels,
            "exp_annotations": {k: render_template(v, labels, value) for k, v in rule.annotations.items()}}


@pytest.mark.parametrize("layout", ["exported", "honor"])
def test_gpu_alerts_keep_their_pod_and_model_while_the_engine_is_down(tmp_path, layout):
    sc = replace(scenario.load("alerts-gpu-survives"), dcgm=layout)
    series = scenario.synthesize(sc)
    xid = expected("LLMGPUXidError", "chat-0", 79, series)
    ecc = expected("LLMGPUEccOrRowRemapFailure", "chat-1", 1, series)
    tests = [{"eval_time": "29m", "alertname": name, "exp_alerts": []}
             for name in ("LLMGPUXidError", "LLMGPUEccOrRowRemapFailure")]
    # Engines gone from 32m / 33m (samples); their series are stale 5 minutes later. The alerts stay.
    for at in ("31m", "45m", "59m"):
        tests += [{"eval_time": at, "alertname": "LLMGPUXidError", "exp_alerts": [xid]},
                  {"eval_time": at, "alertname": "LLMGPUEccOrRowRemapFailure", "exp_alerts": [ecc]}]
    # chat-0 deleted at 60m (its dcgm series stale after promtool's 5m lookback): the freed GPU's XID
    # belongs to no pod any more; chat-1 still holds its GPU.
    tests += [{"eval_time": "1h7m", "alertname": "LLMGPUXidError", "exp_alerts": []},
              {"eval_time": "1h7m", "alertname": "LLMGPUEccOrRowRemapFailure", "exp_alerts": [ecc]}]
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
