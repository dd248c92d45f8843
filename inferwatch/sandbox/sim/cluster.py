"""The fleet over time: models, their pods and GPUs, routing, lifecycle, faults; one sample per step.

Every `step` seconds each pod yields a `PodSample`: whether its target is up, whether its counters
restarted, per engine part (vLLM DP engine / SGLang DP rank) the gauges and what happened since the
last sample (`engine.Observed`), and per GPU the telemetry of `gpu.Gpu`. The simulation advances in
sub-steps of at most `MAX_SUBSTEP` seconds. Randomness comes from one seed per scenario.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

from . import lora, pd
from .engine import Conditions, Engine, Observed, Serving
from .faults import Fault, product
from .gpu import Gpu, GpuSpec
from .workload import Workload, drift, poisson, sample

MAX_SUBSTEP = 5.0
WARMUP = 300.0  # seconds simulated before the first sample


@dataclass
class PodSpec:
    name: str
    gpus: int = 1
    engines: int = 1
    role: str = ""


@dataclass
class ModelSim:
    name: str
    pods: list[PodSpec]
    workload: Workload
    serving: Serving
    faults: list[Fault] = field(default_factory=list)
    spare_gpus: int = 0   # GPUs on the model's nodes that no pod uses (dcgm series without pod labels)
    transfer: pd.Link = field(default_factory=pd.Link)  # prefill -> decode KV path (pods with roles)
    replicas: int | None = None  # the Deployment's desired replicas (kube-state-metrics); None: not reported

    def desired_replicas(self, t: float) -> int | None:
        """The Deployment's desired replicas at `t`: the declared count until a `scale` fault changes it."""
        out = self.replicas
        for f in sorted((f for f in self.faults if f.kind == "scale"), key=lambda f: f.at):
            if out is not None and f.level(t) > 0:
                out = int(f.param("replicas", out))
        return out

    @property
    def disaggregated(self) -> bool:
        return any(p.role == "decode" for p in self.pods)


@dataclass
class PartSample:
    running: float
    waiting: float
    kv_usage: float
    obs: Observed
    adapters: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # LoRA adapters (running, waiting)


@dataclass
class GpuSample:
    index: int
    attached: bool         # dcgm-exporter labels it with the pod
    engine_active: float
    tensor_active: float
    dram_active: float
    power: float
    temperature: float
    sm_mhz: float
    fb_used_mib: float
    fb_total_mib: float
    xid: float
    remapped_rows: float
    row_remap_failure: float
    reasons: frozenset[str] = frozenset()  # clock-event reasons active at the sample
    violation_ns: tuple[float, float] = (0.0, 0.0)  # time the power / thermal limit held the clock back


@dataclass
class PodSample:
    t: float
    up: float | None       # 1 serving, 0 target down, None: no target (pod gone)
    reset: bool            # counters restarted since the previous sample
    parts: list[PartSample]
    gpus: list[GpuSample]
    restarts: float        # kube-state-metrics container restarts


class _Pod:
    def __init__(self, spec: PodSpec, serving: Serving, gpu: GpuSpec, rng: random.Random) -> None:
        self.spec = spec
        self.per_engine = max(1, spec.gpus // max(1, spec.engines))
        s = Serving(**{**serving.__dict__, "tp": serving.tp * self.per_engine})
        self.engines = [Engine(s, rng) for _ in range(max(1, spec.engines))]
        self.obs = [Observed() for _ in self.engines]
        self.gpus = [Gpu(gpu) for _ in range(spec.gpus)]
        self.acc = [[0.0, 0.0, 0.0, 0.0] for _ in self.gpus]  # busy, tensor, dram, seconds since sample
        self.status = "up"
        self.reset = True
        self.restarts = 0.0
        self.was_down = False

    def crash(self) -> None:
        for e in self.engines:
            e.lose_all()
        self.obs = [Observed() for _ in self.engines]
        if self.status == "up":
            self.restarts += 1
        self.status = "down"
        self.reset = True


def simulate(models: list[ModelSim], start: float, duration: float, step: float, seed: int = 0,
             gpu: GpuSpec = GpuSpec()) -> dict[tuple[int, str], list[PodSample]]:
    """(model index, pod name) -> samples at start, start + step, ..., start + duration."""
    subs = max(1, math.ceil(step / MAX_SUBSTEP))
    h = step / subs
    rng = random.Random(seed)
    pods = {(mi, p.name): _Pod(p, m.serving, gpu, random.Random(zlib.crc32(f"{seed}/{mi}/{p.name}".encode())))
            for mi, m in enumerate(models) for p in m.pods}
    for m in models:
        for f in m.faults:
            f._rng = random.Random(zlib.crc32(f"{seed}/{f.kind}/{f.at}".encode()))
    handoffs = {mi: pd.Handoff(m.transfer, random.Random(zlib.crc32(f"{seed}/{mi}/pd".encode())))
                for mi, m in enumerate(models) if m.disaggregated}
    for (mi, _), pod in pods.items():
        if mi in handoffs and pod.spec.role != "decode":
            for e in pod.engines:
                e.handoff = []
    phases = [rng.uniform(0, 2 * math.pi) for _ in models]
    noise = [0.0 for _ in models]
    out: dict[tuple[int, str], list[PodSample]] = {k: [] for k in pods}
    for k in range(int(WARMUP // h)):  # start from a loaded engine, not an empty one
        t = -WARMUP + k * h
        for mi, m in enumerate(models):
            _advance(m, mi, pods, t, h, phases[mi], noise[mi], rng, handoffs.get(mi))
    for pod in pods.values():
        pod.obs = [Observed() for _ in pod.engines]
        pod.acc = [[0.0, 0.0, 0.0, 0.0] for _ in pod.gpus]
    n = int(duration // step)
    for i in range(n + 1):
        t_rel = i * step
        for key, pod in pods.items():
            out[key].append(_sample(start + t_rel, pod, models[key[0]], t_rel, handoffs.get(key[0])))
        if i == n:
            break
        for k in range(subs):
            t = t_rel + k * h
            for mi, m in enumerate(models):
                noise[mi] = 0.9 * noise[mi] + 0.1 * rng.gauss(0.0, m.workload.noise * 4.4)
                _advance(m, mi, pods, t, h, phases[mi], noise[mi], rng, handoffs.get(mi))
    return out


def _lifecycle(m: ModelSim, pod: _Pod, t: float) -> str:
    """up | down | gone | unscraped at model time `t` (seconds from start)."""
    name = pod.spec.name
    for f in m.faults:
        if not f.applies(name) or f.level(t) <= 0 and f.kind != "restart":
            continue
        if f.kind in ("pod_loss", "scale"):
            return "gone"
        if f.kind == "crash_loop" or (f.kind == "xid" and f.param("crash", 0)):
            up, down = f.param("up", 60.0), f.param("down", 120.0)
            if (t - f.at) % (up + down) < down:
                return "down"
        if f.kind == "restart" and f.at <= t < f.at + f.param("down", 20.0):
            return "down"
        if f.kind == "scrape_gap":
            return "unscraped"
    return "up"


def _advance(m: ModelSim, mi: int, pods: dict, t: float, h: float, phase: float, noise: float,
             rng: random.Random, handoff: pd.Handoff | None = None) -> None:
    w = m.workload
    # prefill pods first: the KV they hand off this step may reach a decode pod within it
    mine = sorted(((p.spec.name, p) for (i, _), p in pods.items() if i == mi), key=lambda x: x[1].spec.role == "decode")
    for name, pod in mine:
        state = _lifecycle(m, pod, t)
        if state in ("down", "gone") and pod.status == "up":
            pod.crash()
        if state == "gone":
            pod.status = "gone"
        elif state == "down":
            pod.status = "down"
        elif pod.status in ("down", "gone"):
            pod.status = "up"  # restarted: counters begin again at 0
            pod.reset = True
        pod.scraped = state != "unscraped"
    ready = [(name, pod) for name, pod in mine if pod.status == "up" and not pod.spec.role == "decode"]
    rate = max(0.0, w.rate * drift(w, t, phase) * math.exp(noise) * product(m.faults, "request_rate", t))
    weights = {name: product(m.faults, "routing_skew", t, name) for name, _ in ready}
    total = sum(weights.values()) or 1.0
    prompt_x = product(m.faults, "prompt_length", t)
    gen_x = product(m.faults, "generation_length", t)
    reuse_x = product(m.faults, "prefix_reuse", t)
    adapters_x = product(m.faults, "lora_adapters", t)
    decode = [name for name, pod in mine if pod.status == "up" and pod.spec.role == "decode"]
    for name, pod in mine:
        if pod.status != "up":
            _gpus_idle(m, pod, t, h)
            continue
        pod_rate = 0.0
        if name in weights:
            pod_rate = rate * weights[name] / total
            pod_rate *= _own(m.faults, "request_rate", t, name)  # extra traffic sent to this pod only
        c = _conditions(m, pod, name, t, w)
        p_x = prompt_x * _own(m.faults, "prompt_length", t, name)
        g_x = gen_x * _own(m.faults, "generation_length", t, name)
        r_x = reuse_x * _own(m.faults, "prefix_reuse", t, name)
        a_x = adapters_x * _own(m.faults, "lora_adapters", t, name)
        handed, moved = [], {}
        if handoff is not None and pod.spec.role == "decode":
            handed, moved = handoff.arrive(name, t + h)
        for e_i, engine in enumerate(pod.engines):
            gpus = pod.gpus[e_i * pod.per_engine:(e_i + 1) * pod.per_engine] or pod.gpus[:1]
            c.clock = min(g.clock_factor for g in gpus) if gpus else 1.0
            arrivals = sample(engine.rng, w, t, h, poisson(engine.rng, pod_rate / len(pod.engines) * h),
                              p_x, g_x, r_x, a_x)
            if engine.handoff is not None:
                arrivals = [pd.prefill_leg(r) for r in arrivals]
            arrivals += handed[e_i::len(pod.engines)]
            for key, inc in moved.items():
                if key == "errors":  # transfers failed for good: the decode pod fails the request
                    pod.obs[e_i].finished["error"] += inc / len(pod.engines)
                else:
                    pod.obs[e_i].surfaces[key] = pod.obs[e_i].surfaces.get(key, 0.0) + inc / len(pod.engines)
            before = (pod.obs[e_i].busy, pod.obs[e_i].compute, pod.obs[e_i].memory)
            engine.step(t, h, arrivals, c, pod.obs[e_i])
            if engine.handoff:
                handoff.send(engine.handoff, decode, engine.s, m.faults, t)
                engine.handoff.clear()
            o = pod.obs[e_i]
            busy, comp, mem = ((o.busy - before[0]) / h, (o.compute - before[1]) / h, (o.memory - before[2]) / h)
            for g_i, g in enumerate(gpus):
                index = e_i * pod.per_engine + g_i
                _gpu_update(m, pod, name, index, g, t, h, min(1.0, busy), min(1.0, comp), min(1.0, mem))


def _own(faults: list[Fault], kind: str, t: float, pod: str) -> float:
    """Multiplier of the faults of `kind` that name pods (and name this one)."""
    out = 1.0
    for f in faults:
        if f.kind == kind and f.pods is not None and pod in f.pods:
            out *= f.scale(t)
    return out


def _conditions(m: ModelSim, pod: _Pod, name: str, t: float, w: Workload) -> Conditions:
    c = Conditions(timeout=w.timeout, accept=w.acceptance)
    for f in m.faults:
        if not f.applies(name):
            continue
        lv = f.level(t)
        if lv <= 0:
            continue
        if f.kind == "host_overhead":
            c.host_s += f.param("seconds", 0.05) * lv
        elif f.kind == "gpu_contention":
            c.contention = max(c.contention, f.param("share", 0.5) * lv)
        elif f.kind == "kv_capacity":
            c.kv_factor *= 1.0 + (f.factor - 1.0) * lv
        elif f.kind == "max_seqs":
            c.seqs_factor *= 1.0 + (f.factor - 1.0) * lv
        elif f.kind == "max_loras":
            c.loras_factor *= 1.0 + (f.factor - 1.0) * lv
        elif f.kind == "draft_acceptance":
            c.accept = min(1.0, c.accept * (1.0 + (f.factor - 1.0) * lv))
        elif f.kind == "engine_errors":
            c.fail = max(c.fail, f.param("errors", 0.01) * min(1.0, lv))
        elif f.kind in ("xid", "row_remap"):
            c.fail = max(c.fail, f.param("errors", 0.5 if f.kind == "xid" else 0.0) * min(1.0, lv))
        elif f.kind == "fb_pressure":
            total = pod.gpus[0].spec.fb_total_mib
            over = pod.engines[0].s.mem_fraction * total + f.param("mib", 0.0) * lv - 0.97 * total
            c.fail = max(c.fail, min(0.6, max(0.0, over / (0.03 * total))))
    return c


def _gpu_update(m: ModelSim, pod: _Pod, name: str, index: int, g: Gpu, t: float, h: float, busy: float,
                tensor: float, dram: float) -> None:
    cap, extra_c, taken, share, xid, rows, failed = None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for f in m.faults:
        if not f.applies_gpu(name, index):
            continue
        lv = f.level(t)
        if lv <= 0:
            continue
        if f.kind == "clock_cap":
            mhz = g.spec.max_mhz - (g.spec.max_mhz - f.param("mhz", 1400.0)) * min(1.0, lv)
            cap = mhz if cap is None else min(cap, mhz)
        elif f.kind == "thermal":
            extra_c += f.param("celsius", 30.0) * lv
        elif f.kind == "fb_pressure":
            taken += f.param("mib", 0.0) * lv
        elif f.kind == "gpu_contention":
            share = max(share, f.param("share", 0.5) * lv)
        elif f.kind == "xid":
            xid = f.param("code", 79.0)
        elif f.kind == "row_remap":
            rows, failed = f.param("rows", 1.0), f.param("failure", 0.0)
    busy = min(1.0, busy)
    g.update(h, busy, min(1.0, tensor + 0.6 * share), min(1.0, dram + 0.3 * share), cap, extra_c)
    engine = pod.engines[0].s
    g.fb_used_mib = min(g.spec.fb_total_mib, (engine.mem_fraction * g.spec.fb_total_mib + 520.0) *
                        (1.0 if pod.status == "up" else 0.0) + taken)
    g.xid, g.remapped_rows, g.row_remap_failure = xid, rows, failed
    acc = pod.acc[index]
    acc[0] += g.engine_active * h
    acc[1] += g.tensor_active * h
    acc[2] += g.dram_active * h
    acc[3] += h


def _gpus_idle(m: ModelSim, pod: _Pod, t: float, h: float) -> None:
    for i, g in enumerate(pod.gpus):
        _gpu_update(m, pod, pod.spec.name, i, g, t, h, 0.0, 0.0, 0.0)


def _sample(t: float, pod: _Pod, m: ModelSim, t_rel: float, handoff: pd.Handoff | None = None) -> PodSample:
    gpus = []
    for i, g in enumerate(pod.gpus):
        busy, tensor, dram, secs = pod.acc[i]
        secs = secs or 1.0
        gpus.append(GpuSample(i, pod.status != "gone", busy / secs, tensor / secs, dram / secs, g.power,
                              g.temperature, g.sm_mhz, g.fb_used_mib, g.spec.fb_total_mib, g.xid, g.remapped_rows,
                              g.row_remap_failure, g.reasons,
                              (g.violation_ns["power"], g.violation_ns["thermal"])))
        pod.acc[i] = [0.0, 0.0, 0.0, 0.0]
    if pod.status == "gone":
        return PodSample(t, None, True, [], gpus, pod.restarts)
    if pod.status == "down" or not getattr(pod, "scraped", True):
        return PodSample(t, 0.0, pod.reset, [], gpus, pod.restarts)
    parts = []
    for e, o in zip(pod.engines, pod.obs):
        _features(e, o, pod, handoff)
        running = lora.names(e.running)
        parts.append(PartSample(float(len(e.running)), float(len(e.queue)), e.kv_level, o,
                                (running, lora.names(e.queue))))
    pod.obs = [Observed() for _ in pod.engines]
    reset, pod.reset = pod.reset, False
    return PodSample(t, 1.0, reset, parts, gpus, pod.restarts)


def _features(e: Engine, o: Observed, pod: _Pod, handoff: pd.Handoff | None) -> None:
    """The serving features' series a pod exposes even in a period without events: speculative-decoding
    counters, KV-transfer counters and transfers in flight on decode pods, LoRA slots."""
    keys = ()
    if e.s.spec_tokens:
        keys += ("spec_drafts", "spec_draft_tokens", "spec_accepted")
    if handoff is not None and pod.spec.role == "decode":
        keys += ("kv_transfers", "kv_transfer_seconds", "kv_transfer_bytes", "kv_transfer_failed")
        o.surfaces["kv_transfer_queue"] = handoff.in_flight(pod.spec.name) / len(pod.engines)
    for k in keys:
        o.surfaces.setdefault(k, 0.0)
    if e.max_loras:
        o.surfaces["lora_max"] = float(e.max_loras)
