"""GPU alerts that outlive the engine (alerts-gpu-survives, `promtool test rules`).

An XID or a failed row remap often kills the engine: its series vanish while dcgm-exporter keeps
reporting the fault and still attributes the GPU to the pod. The GPU alerts must keep firing with the
pod and model labels for as long as the pod holds the GPU, in both dcgm-exporter label layouts (the Helm
chart's default `exported_pod`, `pod` with honorLabels), and stop once the pod is deleted and the GPU freed.
"""
from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
import yaml

from test_alerts import DEFAULT, alert_rules, promtool, render_template, write_rules
from inferwatch.core.config import Config
from inferwatch.core.promql import Agg
from inferwatch.core.records import gpu_past
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


def test_fields_tested_series_by_series_keep_fallbacks_and_parts(tmp_path):
    """`gpu_past`: a fallback source (GPU_UTIL) counts only on GPUs without the source before it, even
    when the fallback passes and the first source does not; sources that set a label (throttle reasons)
    are parts, so a GPU with only thermal violation time passes. The framebuffer ratio, tested as
    `free / used < 1 / floor - 1` and computed as `1 / (1 + free / used)`, is `used / (used + free)` on
    either side of the floor; an empty GPU and one reporting 0 of 0 never pass."""
    cfg = Config()
    labels = lambda uuid: f'{{UUID="{uuid}", GPU_I_ID="", gpu="0"}}'  # noqa: E731
    series = [("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "GPU-both", "0.5x20"), ("DCGM_FI_DEV_GPU_UTIL", "GPU-both", "100x20"),
              ("DCGM_FI_DEV_GPU_UTIL", "GPU-util", "99x20"), ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "GPU-busy", "0.99x20"),
              ("DCGM_FI_DEV_GPU_UTIL", "GPU-busy", "10x20"),
              ("DCGM_FI_DEV_THERMAL_VIOLATION", "GPU-hot", "0+6e9x20"), ("DCGM_FI_DEV_POWER_VIOLATION", "GPU-cool", "0x20"),
              ("DCGM_FI_DEV_FB_USED", "GPU-full", "64000x20"), ("DCGM_FI_DEV_FB_FREE", "GPU-full", "16000x20"),
              ("DCGM_FI_DEV_FB_USED", "GPU-empty", "0x20"), ("DCGM_FI_DEV_FB_FREE", "GPU-empty", "80000x20"),
              ("DCGM_FI_DEV_FB_USED", "GPU-none", "0x20"), ("DCGM_FI_DEV_FB_FREE", "GPU-none", "0x20"),
              ("DCGM_FI_DEV_FB_USED", "GPU-half", "40000x20"), ("DCGM_FI_DEV_FB_FREE", "GPU-half", "40000x20")]
    busy = Agg("max", gpu_past(cfg, "engine_active", 0.95), by=("UUID",))
    throttled = Agg("max", gpu_past(cfg, "throttle", 0.05), by=("UUID",))
    fb = Agg("max", gpu_past(cfg, "fb_used", 0.4), by=("UUID",))
    fb_near = Agg("max", gpu_past(cfg, "fb_used", 0.79), by=("UUID",))
    fb_over = Agg("max", gpu_past(cfg, "fb_used", 0.8), by=("UUID",))
    test = {"interval": "1m",
            "input_series": [{"series": name + labels(uuid), "values": values} for name, uuid, values in series],
            "promql_expr_test": [
                {"expr": busy.render(), "eval_time": "10m",
                 "exp_samples": [{"labels": '{UUID="GPU-util"}', "value": 0.99},
                                 {"labels": '{UUID="GPU-busy"}', "value": 0.99}]},
                {"expr": throttled.render(), "eval_time": "10m",
                 "exp_samples": [{"labels": '{UUID="GPU-hot"}', "value": 0.1}]},
                {"expr": fb.render(), "eval_time": "10m",
                 "exp_samples": [{"labels": '{UUID="GPU-full"}', "value": 0.8},
                                 {"labels": '{UUID="GPU-half"}', "value": 0.5}]},
                {"expr": fb_near.render(), "eval_time": "10m",
                 "exp_samples": [{"labels": '{UUID="GPU-full"}', "value": 0.8}]},
                {"expr": fb_over.render(), "eval_time": "10m", "exp_samples": []}]}
    (tmp_path / "t.yaml").write_text(yaml.dump({"rule_files": [], "tests": [test]}, sort_keys=False))
    res = subprocess.run(["promtool", "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
