"""Simulated pods as the series the engine, Kubernetes and dcgm-exporter expose (exposition.py's writers)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..exposition import Dist, Profile, Step, _Acc, emit_engine, emit_gpus, target_labels
from .cluster import PartSample, PodSample, simulate

if TYPE_CHECKING:
    from ..scenario import ModelSpec, Pod, Scenario

def emit_simulation(acc: _Acc, sc: Scenario, prof: Profile, models: list[ModelSpec]) -> None:
    runs = simulate([m.sim for m in models], 0.0, sc.duration, sc.step, seed=sc.seed)
    for mi, m in enumerate(models):
        for pod in m.pods:
            for sample in runs[(mi, pod.name)]:
                _emit(acc, sc, prof, m, pod, sample)
        _spare_gpus(acc, sc, m)


def _spare_gpus(acc: _Acc, sc: Scenario, m: ModelSpec) -> None:
    """GPUs on the first pod's node that no pod holds: idle, no pod labels."""
    first = m.pods[0]
    idle = {"engine_active": 0.0, "tensor_active": 0.0, "dram_active": 0.0, "power": 72.0, "temperature": 34.0,
            "sm_clock": 345.0, "xid": 0.0, "remapped_rows": 0.0, "row_remap_failure": 0.0, "fb_used": 0.0,
            "fb_total": 81559.0}
    gpus = [(first.gpus + i, False, idle) for i in range(m.sim.spare_gpus)]
    if gpus:
        for t in sc.times():
            emit_gpus(acc, sc, m, first, gpus, t)


def _emit(acc: _Acc, sc: Scenario, prof: Profile, m: ModelSpec, pod: Pod, s: PodSample) -> None:
    t = sc.start + s.t
    target = target_labels(m, pod)
    if s.up is not None:
        acc.gauge({"__name__": "up", **target}, t, s.up)
    if s.up is not None and sc.kube_state_metrics:
        acc.gauge({"__name__": "kube_pod_container_status_restarts_total", "namespace": m.labels.get("namespace", ""),
                   "pod": pod.name, "container": "vllm" if sc.engine == "vllm" else "sglang",
                   "job": "kube-state-metrics"}, t, s.restarts)
    if s.parts:
        emit_engine(acc, sc, prof, m, pod, target, [_step(p, sc.step) for p in s.parts], t, s.reset)
    emit_gpus(acc, sc, m, pod, [(g.index, g.attached, {
        "engine_active": g.engine_active, "tensor_active": g.tensor_active, "dram_active": g.dram_active,
        "power": g.power, "temperature": g.temperature, "sm_clock": g.sm_mhz, "xid": g.xid,
        "remapped_rows": g.remapped_rows, "row_remap_failure": g.row_remap_failure, "fb_used": g.fb_used_mib, "fb_total": g.fb_total_mib})
        for g in s.gpus], t)


def _step(p: PartSample, dt: float) -> Step:
    o = p.obs
    return Step(p.running, p.waiting, p.kv_usage, dict(o.finished), o.prompt_tokens, o.generation_tokens,
                o.prefix_queries, o.prefix_hits, o.preemptions, dt,
                {"ttft": Dist.observed(o.ttft), "itl": Dist.observed(o.itl), "e2e": Dist.observed(o.e2e),
                 "queue": Dist.observed(o.queue), "prompt": Dist.observed(o.prompt_len),
                 "gen": Dist.observed(o.gen_len)},
                dict(o.surfaces), p.adapters, Dist.observed(o.itl_steps) if o.itl_steps else None)
