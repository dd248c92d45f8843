"""Multi-node instances on real engine bodies: a vLLM LeaderWorkerSet group (the leader `big-0`, named like
its group, exports engine metrics; the worker `big-0-1` holds GPUs and exports nothing) and an SGLang instance across two nodes (both export
scheduler metrics, the second labelled pp_rank="1").

The bodies come from fixtures/expositions (the engines' own metric code); the scrape-time labels are the
ones generate/scrape.py sets (`inference_instance` from the LWS name and group index, tested on a real
Prometheus in test_scrape.py), and dcgm-exporter series stand for each pod's GPUs. Every record is
inlined down to raw series and queried on one real Prometheus.
"""
from __future__ import annotations

import io

import pytest

from inferwatch.core import schema
from inferwatch.core.config import Config
from inferwatch.core.promql import Matcher, Selector, check, inline
from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from test_expositions import EXPOSITIONS, T0, T1, advanced, parse_body

CFG = Config()
INDEX = schema.records(CFG)
TARGET = {"namespace": "llm", "job": "inference"}


def pod_series(stem: str, pod: str, workload: str, backend: str, instance: str, keep=lambda labels: True,
               relabel=lambda labels: labels, down: bool = False) -> list:
    """A pod's target and body at T0 and T1; `down`: its target fails at T1 (the body only at T0)."""
    target = {**TARGET, "pod": pod, "workload_name": workload, "backend": backend, "inference_instance": instance,
              "instance": f"{pod}:8000"}
    out = [({"__name__": "up", **target}, [(T0, 1.0), (T1, 0.0 if down else 1.0)])]
    for labels, value, kind in parse_body((EXPOSITIONS / f"{stem}.prom").read_text()):
        if keep(labels):
            later = [] if down else [(T1, advanced(labels, value, kind))]
            out.append(({**relabel(labels), **target}, [(T0, value)] + later))
    return out


def silent_pod(pod: str, workload: str, backend: str, instance: str) -> list:
    """A target that never answers: a vLLM Ray worker (no API server) or a pod that never started."""
    return [({"__name__": "up", **TARGET, "pod": pod, "workload_name": workload, "backend": backend,
              "inference_instance": instance, "instance": f"{pod}:8000"}, [(T0, 0.0), (T1, 0.0)])]


def gpus(pod: str, node: str, first: int, active: float) -> list:
    """Two GPUs of a pod, as dcgm-exporter (Kubernetes mode, honorLabels off) reports them: utilization and
    the temperature every counters CSV it ships exports (what tells the records a GPU exists)."""
    out = []
    for i in range(2):
        labels = {"gpu": str(i), "UUID": f"GPU-{node}-{first + i}", "modelName": "NVIDIA H100 80GB HBM3",
                  "Hostname": node, "exported_pod": pod, "exported_namespace": "llm", "namespace": "gpu-operator",
                  "pod": f"dcgm-exporter-{node}", "job": "dcgm-exporter"}
        out.append(({"__name__": "DCGM_FI_DEV_GPU_UTIL", **labels}, [(T0, active), (T1, active)]))
        out.append(({"__name__": "DCGM_FI_DEV_GPU_TEMP", **labels}, [(T0, 60.0), (T1, 61.0)]))
    return out


def series() -> list:
    sched = lambda labels: "pp_rank" in labels  # noqa: E731 - a PP>1 node runs only schedulers
    second = lambda labels: {**labels, "pp_rank": "1"}  # noqa: E731
    return (pod_series("vllm-0.33.0", "big-0", "big", "vllm", "big-0")
            + silent_pod("big-0-1", "big", "vllm", "big-0")   # a Ray worker: no /metrics
            + pod_series("vllm-0.33.0", "big-1", "big", "vllm", "big-1", down=True)  # a leader that fails
            + silent_pod("big-1-1", "big", "vllm", "big-1")
            + silent_pod("solo-0", "solo", "vllm", "solo-0")   # never started: no instance serves
            + pod_series("sglang-0.5.23", "sg2-0", "sg2", "sglang", "sg2-0")
            + pod_series("sglang-0.5.23", "sg2-0-1", "sg2", "sglang", "sg2-0", keep=sched, relabel=second, down=True)
            + gpus("big-0", "node-a", 0, 60.0) + gpus("big-0-1", "node-b", 0, 80.0)
            + pod_series("sglang-0.5.23", "sg-0", "sg", "sglang", "sg-0")
            + pod_series("sglang-0.5.23", "sg-0-1", "sg", "sglang", "sg-0", keep=sched, relabel=second))


@pytest.fixture(scope="module")
def prometheus():
    buf = io.StringIO()
    write_openmetrics(series(), buf)
    with LocalPrometheus(buf.getvalue()) as prom:
        yield prom


def query(prometheus, record: str, *matchers: Matcher) -> list[dict]:
    return prometheus.query(check(inline(Selector(record, matchers), INDEX)), T1)


def test_worker_gpus_belong_to_the_instance_engine_pod(prometheus):
    got = query(prometheus, "llm_gpu:engine_active:max", Matcher("workload_name", "big"))
    by_uuid = {r["metric"]["UUID"]: r["metric"] for r in got}
    assert set(by_uuid) == {"GPU-node-a-0", "GPU-node-a-1", "GPU-node-b-0", "GPU-node-b-1"}
    assert {m["pod"] for m in by_uuid.values()} == {"big-0"}          # attributed to the instance's engine pod
    assert {m["backend"] for m in by_uuid.values()} == {"vllm"}
    assert {by_uuid[u].get("gpu_pod") for u in ("GPU-node-b-0", "GPU-node-b-1")} == {"big-0-1"}
    assert "gpu_pod" not in by_uuid["GPU-node-a-0"]                     # the engine pod's own GPUs
    assert {by_uuid[u]["inference_instance"] for u in ("GPU-node-b-0", "GPU-node-b-1")} == {"big-0"}
    assert {float(r["value"][1]) for r in got if r["metric"]["UUID"].startswith("GPU-node-b")} == {0.8}


def test_a_gpu_of_an_unknown_pod_stays_unattributed(prometheus):
    """Only pods scraped by the inference PodMonitor (an `up` with the instance label) are attributed."""
    got = query(prometheus, "llm_gpu:engine_active:max")
    assert {r["metric"]["Hostname" if "Hostname" in r["metric"] else "hostname"] for r in got} == {"node-a", "node-b"}


def test_sglang_second_node_is_counted_once(prometheus):
    """The pp_rank 1 node repeats the batch of pp_rank 0: one serving pod, the batch counted once."""
    pods = query(prometheus, "llm_pod:model:info", Matcher("workload_name", "sg"))
    assert [r["metric"]["pod"] for r in pods] == ["sg-0"]
    running = query(prometheus, "llm_model:requests_running:sum", Matcher("workload_name", "sg"))
    single = query(prometheus, "llm_pod:requests_running:sum", Matcher("pod", "sg-0"))
    assert [r["value"][1] for r in running] == [r["value"][1] for r in single] and len(single) == 1
    assert query(prometheus, "llm_model:pods:count", Matcher("workload_name", "sg"))[0]["value"][1] == "1"


def test_target_down_spares_silent_workers_of_a_serving_instance(prometheus):
    """vLLM's LeaderWorkerSet workers never answer a scrape (the API server runs on the leader only):
    LLMPodTargetDown stays quiet for them while their leader serves (big-0-1) and after it failed
    (big-1-1: the leader alerts), and fires for a failed leader, a pod that never came up outside any
    serving instance, and an SGLang second node that exported metrics and stopped."""
    from inferwatch.generate.writer import rule_groups
    from inferwatch.core.rules import AlertingRule
    rule = next(r for g in rule_groups(CFG) for r in g.rules
                if isinstance(r, AlertingRule) and r.alert == "LLMPodTargetDown")
    got = prometheus.query(check(inline(rule.expr, INDEX)), T1)
    assert sorted(r["metric"]["pod"] for r in got) == ["big-1", "sg2-0-1", "solo-0"]


def test_pod_records_keep_the_instance_and_model_records_drop_it(prometheus):
    pod = query(prometheus, "llm_pod:requests_running:sum", Matcher("pod", "big-0"))
    assert [r["metric"].get("inference_instance") for r in pod] == ["big-0"]
    model = query(prometheus, "llm_model:requests_running:sum", Matcher("workload_name", "big"))
    assert model and all("inference_instance" not in r["metric"] for r in model)
