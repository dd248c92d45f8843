"""GPU alerts that outlive the engine (alerts-gpu-survives, `promtool test rules`).

An XID or a failed row remap often kills the engine: its series vanish while dcgm-exporter keeps
reporting the fault and still attributes the GPU to the pod. The GPU alerts must keep firing with the
pod and model labels for as long as the pod holds the GPU (both dcgm-exporter label layouts), and stop
once the pod is deleted and the GPU freed.
"""
from __future__ import annotations

from test_alerts import DEFAULT, alert_rules, promtool, render_template, write_rules
from inferwatch.sandbox import scenario

MODEL = "Qwen/Qwen2.5-7B-Instruct"
GPUS = {  # pod -> the GPU labels after the records' relabelling
    "chat-0": {"hostname": "gpu-node-0-0", "UUID": "GPU-0e137af1"},
    "chat-1": {"hostname": "gpu-node-0-1", "UUID": "GPU-0fd110c6"},
}


def expected(alert: str, pod: str, value: float) -> dict:
    rule = next(r for r in alert_rules(DEFAULT) if r.alert == alert)
    labels = {"namespace": "llm", "pod": pod, "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3", **GPUS[pod],
              "workload_name": "chat", "backend": "vllm", "model_name": MODEL, **rule.labels}
    return {"exp_labels": labels,
            "exp_annotations": {k: render_template(v, labels, value) for k, v in rule.annotations.items()}}


def test_gpu_alerts_keep_their_pod_and_model_while_the_engine_is_down(tmp_path):
    sc = scenario.load("alerts-gpu-survives")
    series = scenario.synthesize(sc)
    xid, ecc = expected("LLMGPUXidError", "chat-0", 79), expected("LLMGPUEccOrRowRemapFailure", "chat-1", 1)
    tests = [{"eval_time": "29m", "alertname": name, "exp_alerts": []}
             for name in ("LLMGPUXidError", "LLMGPUEccOrRowRemapFailure")]
    # Engines gone from 31m / 32m; their series are stale 5 minutes later. The alerts stay.
    for at in ("31m", "45m", "59m"):
        tests += [{"eval_time": at, "alertname": "LLMGPUXidError", "exp_alerts": [xid]},
                  {"eval_time": at, "alertname": "LLMGPUEccOrRowRemapFailure", "exp_alerts": [ecc]}]
    # chat-0 deleted at 60m (its dcgm series stale after promtool's 5m lookback): the freed GPU's XID
    # belongs to no pod any more; chat-1 still holds its GPU.
    tests += [{"eval_time": "1h7m", "alertname": "LLMGPUXidError", "exp_alerts": []},
              {"eval_time": "1h7m", "alertname": "LLMGPUEccOrRowRemapFailure", "exp_alerts": [ecc]}]
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
