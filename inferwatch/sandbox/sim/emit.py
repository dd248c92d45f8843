"""Simulated pods as the series the engine, Kubernetes and dcgm-exporter expose (exposition.py's writers)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..exposition import Dist, Profile, Step, _Acc, emit_engine, emit_gpus, gpu_labels, target_labels
from .cluster import GpuSample, PartSample, PodSample, simulate

if TYPE_CHECKING:
    from ..scenario import ModelSpec, Pod, Scenario

def emit_simulation(acc: _Acc, sc: Scenario, prof: Profile, models: list[ModelSpec]) -> None:
    runs = simulate([m.sim for m in models], 0.0, sc.duration, sc.step, seed=sc.seed)
    for mi, m in enumerate(models):
        for pod in m.pods:
            custom = _CustomCounters() if sc.dcgm_counters == "custom" else None
            for sample in runs[(mi, pod.name)]:
                _emit(acc, sc, prof, m, pod, sample)
                if custom:
                    for g in sample.gpus:
                        custom.emit(acc, sc.start + sample.t, gpu_labels(sc, m, pod, g.index, g.attached), g)
        _spare_gpus(acc, sc, m)
        _desired_replicas(acc, sc, m)


def _desired_replicas(acc: _Acc, sc: Scenario, m: ModelSpec) -> None:
    """kube-state-metrics' desired replica count of the model's Deployment (named like its workload)."""
    if m.sim.replicas is None:
        return
    labels = {"__name__": "kube_deployment_spec_replicas", "namespace": m.labels.get("namespace", ""),
              "deployment": m.labels.get("workload_name", ""), "job": "kube-state-metrics"}
    for t in sc.times():
        acc.gauge(labels, t, float(m.sim.desired_replicas(t - sc.start)))


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


CLOCK_EVENTS = ("gpu_idle", "clocks_setting", "power_cap", "sw_thermal")
XID_WINDOW = 300.0  # dcgm-exporter's --xid-count-window-size default (5 minutes)


class _CustomCounters:
    """The fields a custom dcgm-exporter counters CSV adds, per GPU of one pod: SM activity, ECC double-bit
    errors (each uncorrectable row remap follows one), the time the power / thermal limit held the clock
    back, clock-event reasons counted once per sample they are active, XIDs within the exporter's window."""

    def __init__(self) -> None:
        self.events: dict[int, dict[str, float]] = {}
        self.xids: dict[int, list[tuple[float, float]]] = {}  # GPU -> (time, code) of each XID event
        self.last_xid: dict[int, float] = {}

    def emit(self, acc: _Acc, t: float, labels: dict[str, str], g: GpuSample) -> None:
        counts = self.events.setdefault(g.index, dict.fromkeys(CLOCK_EVENTS, 0.0))
        for reason in g.reasons & counts.keys():
            counts[reason] += 1
        if g.xid and g.xid != self.last_xid.get(g.index):
            self.xids.setdefault(g.index, []).append((t, g.xid))
        self.last_xid[g.index] = g.xid
        power_ns, thermal_ns = g.violation_ns
        for name, value in (("DCGM_FI_PROF_SM_ACTIVE", 0.9 * g.engine_active),
                            ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", g.remapped_rows),
                            ("DCGM_FI_DEV_POWER_VIOLATION", power_ns), ("DCGM_FI_DEV_THERMAL_VIOLATION", thermal_ns)):
            acc.gauge({"__name__": name, **labels}, t, value)
        for reason, n in counts.items():
            acc.gauge({"__name__": "DCGM_EXP_CLOCK_EVENTS_COUNT", "clock_event": reason, **labels}, t, n)
        for code in sorted({c for _, c in self.xids.get(g.index, [])}):
            recent = sum(1 for at, c in self.xids[g.index] if c == code and t - at < XID_WINDOW)
            acc.gauge({"__name__": "DCGM_EXP_XID_ERRORS_COUNT", "xid": f"{code:g}", **labels}, t, float(recent))
