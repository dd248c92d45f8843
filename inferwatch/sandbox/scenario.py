"""Incident scenarios: one fixture format for every kind of test, the demo and the benchmarks.

A scenario (`inferwatch/sandbox/scenarios/*.yaml`) describes the models of a fleet, their pods, one
engine version, and what happens to them. Every scenario but the normalization ones (`norm-*`) is
**simulated**: a model gives its clients' workload (`workload:`), its engine settings (`serving:`) and
exogenous faults (`faults:`), and the serving simulator (sim/) turns them into what the engine,
Kubernetes and dcgm-exporter would expose. No simulated scenario sets a signal. The `norm-*` scenarios
check recording arithmetic on exact values, so they keep a painted `baseline:` and timed `events:` that
set signals directly (log-normal latencies around the requested medians).

`synthesize()` writes both kinds with the same writers, per engine part and sample period (`Step`):
counters integrate, histograms use the engine's real bucket boundaries (from the catalogs). The same
series feed `promtool test rules` (`input_series`), a real Prometheus (OpenMetrics backfill) and the
benchmarks.
"""
from __future__ import annotations

import bisect
import itertools
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from ..core.catalog import load_catalog
from ..core.config import duration_seconds

FIXTURES = Path(__file__).resolve().parent / "scenarios"  # shipped as package data
DEFAULT_START = "2026-01-01T00:00:00Z"

BASELINE: dict[str, float] = {
    "request_rate": 2.0,        # finished requests / s per pod
    "error_ratio": 0.0,         # share of requests failing (engine error / 5xx)
    "abort_ratio": 0.0,         # share of requests aborted
    "ttft": 0.25, "itl": 0.03, "e2e": 6.0, "queue_time": 0.02,  # typical (median) seconds
    "prompt_tokens": 800.0, "generation_tokens": 200.0,           # mean per request
    "running": 8.0, "waiting": 0.0, "kv_usage": 0.4,
    "preemption_rate": 0.0,     # preemptions / s
    "prefix_hit_ratio": 0.5,
    "engine_active": 0.6, "sm_active": 0.5, "tensor_active": 0.35, "dram_active": 0.45,
    "fb_used_ratio": 0.9, "fb_total_mib": 81559.0,
    "power": 350.0, "temperature": 62.0, "sm_clock": 1980.0, "xid": 0.0,
    "remapped_rows": 0.0, "row_remap_failure": 0.0,
}
SIGMA = 0.35  # log-normal spread of latencies and lengths around their median


@dataclass
class Event:
    at: float
    until: float | None
    pods: tuple[str, ...] | None
    set: dict[str, float]
    ramp: float = 0.0
    restart: bool = False
    absent: bool = False  # no samples at all (pod gone / scrape gap)

    def active(self, t: float, pod: str) -> bool:
        return (self.pods is None or pod in self.pods) and t >= self.at and (self.until is None or t < self.until)


@dataclass
class Pod:
    name: str
    gpus: int = 1
    engines: int = 1   # vLLM data-parallel engines (label engine) / SGLang DP ranks (label dp_rank)
    tp: int = 1        # SGLang TP ranks reporting the same scheduler values (metrics for all schedulers)
    role: str = ""
    node: str = ""


@dataclass
class ModelSpec:
    model: str
    labels: dict[str, str]
    pods: list[Pod]
    baseline: dict[str, float]
    events: list[Event]
    sim: "ModelSim | None" = None  # simulated (every scenario but norm-*): workload, serving, faults


@dataclass
class Scenario:
    name: str
    description: str
    engine: str          # vllm | sglang
    version: str         # naming profile, see PROFILES
    start: float         # unix seconds
    duration: float
    step: float
    models: list[ModelSpec]
    incident_at: float | None = None
    expect: dict[str, Any] = field(default_factory=dict)  # what tests assert (e.g. top cause, pods)
    dcgm: str = "exported"  # exported (Helm default, honorLabels false) | honor | hostname-lower
    extra_series: list[dict[str, str]] = field(default_factory=list)
    path: Path | None = None
    seed: int = 0
    kube_state_metrics: bool = False  # simulated pods' container restarts as kube-state-metrics reports them

    @property
    def end(self) -> float:
        return self.start + self.duration

    def times(self) -> list[float]:
        n = int(self.duration // self.step)
        return [self.start + i * self.step for i in range(n + 1)]


# ---- engine naming profiles ----------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    kv_usage: tuple[str, ...]
    prefix: tuple[str, ...]       # prefixes of prefix-cache counters ("" new, "gpu_" old)
    itl: tuple[str, ...]
    error_reason: bool = False     # vLLM finished_reason="error" (0.13+)
    sched_labels: tuple[str, ...] = ()  # SGLang scheduler rank labels
    retract: str = ""             # SGLang: counter | gauge | ""
    queue_hist: bool = True
    streaming_label: bool = False
    aborted: bool = True
    token_hist: bool = True


PROFILES: dict[tuple[str, str], Profile] = {
    ("vllm", "0.8"): Profile(("vllm:gpu_cache_usage_perc",), ("gpu_",), ("vllm:time_per_output_token_seconds",)),
    ("vllm", "0.9"): Profile(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), ("", "gpu_"),
                             ("vllm:time_per_output_token_seconds",)),
    ("vllm", "0.11"): Profile(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), ("", "gpu_"),
                              ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
    ("vllm", "0.33"): Profile(("vllm:kv_cache_usage_perc",), ("",), ("vllm:inter_token_latency_seconds",),
                              error_reason=True),
    ("sglang", "0.4.5"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                 queue_hist=False, aborted=False, token_hist=False),
    ("sglang", "0.5.3"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                 sched_labels=("tp_rank", "pp_rank"), retract="gauge"),
    ("sglang", "0.5.23"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                  sched_labels=("tp_rank", "pp_rank", "moe_ep_rank"), retract="counter",
                                  streaming_label=True),
}

def _engine_buckets(engine: str) -> dict[str, tuple[float, ...]]:
    """The engine's default bucket boundaries, from its catalog (checked against real /metrics bodies)."""
    b = load_catalog(engine).buckets
    return {"ttft": b["ttft_seconds"], "itl": b["itl_seconds"], "e2e": b["e2e_latency_seconds"],
            "queue": b["queue_time_seconds"], "tokens": b["prompt_length_tokens"]}


BUCKETS = {engine: _engine_buckets(engine) for engine in ("vllm", "sglang")}


def le_text(b: float) -> str:
    """`le` as Python's client library writes it (1.0, 0.25, 1e+06)."""
    if b == math.inf:
        return "+Inf"
    text = repr(float(b))
    if "e" in text:
        return f"{b:.0e}".replace("e+0", "e+") if b >= 1e6 else text
    return text


def lognormal_cdf(x: float, median: float, sigma: float = SIGMA) -> float:
    if x <= 0 or median <= 0:
        return 0.0 if x < median or median > 0 else 1.0
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


# ---- loading --------------------------------------------------------------------------------

class ScenarioError(ValueError):
    pass


def load(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.exists():
        path = FIXTURES / f"{name_or_path}.yaml"
    if not path.exists():
        raise ScenarioError(f"no scenario {name_or_path!r} (looked in {FIXTURES})")
    data = yaml.safe_load(path.read_text())
    sc = from_dict(data)
    sc.path = path
    return sc


def available() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def _d(value, default: float | None = None) -> float | None:
    if value is None:
        return default
    return float(value) if isinstance(value, (int, float)) else duration_seconds(str(value))


def from_dict(data: dict) -> Scenario:
    engine = data.get("engine", "vllm")
    version = str(data.get("version", "0.33" if engine == "vllm" else "0.5.23"))
    if (engine, version) not in PROFILES:
        raise ScenarioError(f"unknown engine/version {engine} {version}; known: "
                            + ", ".join(f"{e} {v}" for e, v in PROFILES))
    start = datetime.fromisoformat(str(data.get("start", DEFAULT_START)).replace("Z", "+00:00"))
    start_s = start.replace(tzinfo=start.tzinfo or timezone.utc).timestamp()
    models_data = data.get("models") or [{k: data[k] for k in ("model", "labels", "pods", "baseline", "events",
                                                                "workload", "serving", "faults", "spare_gpus")
                                           if k in data}]
    models = []
    for m in models_data:
        if any(k in m for k in ("workload", "serving", "faults")) or "events" not in m and "baseline" not in m \
                and "baseline" not in data:
            models.append(_simulated_model(m, len(models)))
            continue
        base = dict(BASELINE)
        base.update({k: float(v) for k, v in (data.get("baseline") or {}).items()} if "models" in data else {})
        base.update({k: float(v) for k, v in (m.get("baseline") or {}).items()})
        unknown = set(base) - set(BASELINE)
        if unknown:
            raise ScenarioError(f"unknown baseline keys {sorted(unknown)}; known: {sorted(BASELINE)}")
        pods = _pods(m, len(models))
        events = []
        for e in m.get("events") or []:
            sets = {k: float(v) for k, v in (e.get("set") or {}).items()}
            if set(sets) - set(BASELINE):
                raise ScenarioError(f"unknown event keys {sorted(set(sets) - set(BASELINE))}")
            events.append(Event(at=_d(e.get("at"), 0.0), until=_d(e.get("until")),
                                pods=tuple(e["pods"]) if e.get("pods") else None, set=sets,
                                ramp=_d(e.get("ramp"), 0.0), restart=bool(e.get("restart")),
                                absent=bool(e.get("absent"))))
        models.append(ModelSpec(model=m.get("model", "Qwen/Qwen2.5-7B-Instruct"),
                                labels=dict(m.get("labels") or {"namespace": "llm", "workload_name": "chat"}),
                                pods=pods, baseline=base, events=events))
    return Scenario(name=data.get("name", "scenario"), description=data.get("description", ""), engine=engine,
                    version=version, start=start_s, duration=_d(data.get("duration"), 7200.0),
                    step=_d(data.get("step"), 30.0), models=models,
                    incident_at=_d(data.get("incident_at")), expect=data.get("expect") or {},
                    dcgm=data.get("dcgm", "exported"), extra_series=data.get("series") or [],
                    seed=int(data.get("seed", 0)), kube_state_metrics=bool(data.get("kube_state_metrics")))


def _pods(m: dict, model_index: int) -> list[Pod]:
    pods = [Pod(**p) if isinstance(p, dict) else Pod(name=str(p)) for p in m.get("pods", ["pod-0"])]
    for i, p in enumerate(pods):
        p.node = p.node or f"gpu-node-{model_index}-{i}"
    return pods


def _simulated_model(m: dict, model_index: int) -> ModelSpec:
    """A model whose series come from the simulator (sim/): what clients send, how it is served, faults."""
    from .sim.spec import model_sim
    pods = _pods(m, model_index)
    try:
        sim = model_sim(m, pods, _d)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"model {m.get('model', '?')}: {exc}") from None
    return ModelSpec(model=m.get("model", "Qwen/Qwen2.5-7B-Instruct"),
                     labels=dict(m.get("labels") or {"namespace": "llm", "workload_name": "chat"}),
                     pods=pods, baseline={}, events=[], sim=sim)


# ---- synthesis --------------------------------------------------------------------------------

def state(m: ModelSpec, pod: str, rel_t: float) -> dict[str, float] | None:
    """A pod's values at a time (seconds from start), or None while it has no samples."""
    out = dict(m.baseline)
    for e in m.events:
        if not e.active(rel_t, pod):
            continue
        if e.absent:
            return None
        weight = min(1.0, (rel_t - e.at) / e.ramp) if e.ramp else 1.0
        for k, v in e.set.items():
            out[k] = out[k] + (v - out[k]) * weight
    return out


Series = tuple[dict[str, str], list[tuple[float, float]]]


class _Acc:
    """Collects samples per series, integrating counters."""

    def __init__(self) -> None:
        self.samples: dict[tuple, list[tuple[float, float]]] = {}
        self.totals: dict[tuple, float] = {}

    def gauge(self, labels: dict[str, str], t: float, v: float) -> None:
        self.samples.setdefault(_key(labels), []).append((t, v))

    def counter(self, labels: dict[str, str], t: float, inc: float, reset: bool = False) -> None:
        k = _key(labels)
        total = 0.0 if reset else self.totals.get(k, 0.0)
        total += inc
        self.totals[k] = total
        self.samples.setdefault(k, []).append((t, total))

    def series(self) -> list[Series]:
        return [(dict(k), v) for k, v in self.samples.items()]


def _key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


# ---- what one engine did in one sample period -------------------------------------------------

@dataclass
class Dist:
    """Observations for a histogram: their count, their sum, and the share at or below a bound."""
    count: float
    total: float
    share: Callable[[float], float]

    @staticmethod
    def lognormal(median: float, count: float) -> "Dist":
        return Dist(count, count * median * math.exp(SIGMA ** 2 / 2), lambda b: lognormal_cdf(b, median))

    @staticmethod
    def observed(values: list[tuple[float, float]]) -> "Dist":
        """(value, weight) pairs, binned exactly."""
        ordered = sorted(values)
        points = [v for v, _ in ordered]
        cumulative = list(itertools.accumulate(w for _, w in ordered))
        count = cumulative[-1] if cumulative else 0.0

        def share(b: float) -> float:
            i = bisect.bisect_right(points, b)
            return cumulative[i - 1] / count if i else 0.0
        return Dist(count, sum(v * w for v, w in values), share)


@dataclass
class Step:
    """One engine part's gauges at a sample and its counters' increments since the previous sample."""
    running: float
    waiting: float
    kv_usage: float
    finished: dict[str, float]        # finished_reason -> requests (stop, length, abort, error)
    prompt_tokens: float
    generation_tokens: float
    prefix_queries: float
    prefix_hits: float
    preemptions: float
    dt: float
    hists: dict[str, Dist]            # ttft, itl, e2e, queue, prompt, gen

    @property
    def requests(self) -> float:
        return sum(self.finished.values())

    def merged(self, other: "Step") -> "Step":
        return Step(self.running + other.running, self.waiting + other.waiting, max(self.kv_usage, other.kv_usage),
                    {k: v + other.finished.get(k, 0.0) for k, v in self.finished.items()},
                    self.prompt_tokens + other.prompt_tokens, self.generation_tokens + other.generation_tokens,
                    self.prefix_queries + other.prefix_queries, self.prefix_hits + other.prefix_hits,
                    self.preemptions + other.preemptions, self.dt,
                    {k: _merge(d, other.hists[k]) for k, d in self.hists.items()})


def _merge(a: Dist, b: Dist) -> Dist:
    count = a.count + b.count
    return Dist(count, a.total + b.total,
                lambda x: (a.share(x) * a.count + b.share(x) * b.count) / count if count else 0.0)


def painted_step(st: dict[str, float], dt: float, share: float) -> Step:
    """A painted (norm-*) state as a Step: requests at the given rate, latencies log-normal."""
    reqs = st["request_rate"] * dt * share
    ok = 1 - st["error_ratio"] - st["abort_ratio"]
    prompt = reqs * st["prompt_tokens"]
    tokens = reqs * max(st["generation_tokens"] - 1, 1)
    return Step(st["running"] * share, st["waiting"] * share, st["kv_usage"],
                {"stop": reqs * ok * 0.8, "length": reqs * ok * 0.2, "abort": reqs * st["abort_ratio"],
                 "error": reqs * st["error_ratio"]},
                prompt, reqs * st["generation_tokens"], prompt, prompt * st["prefix_hit_ratio"],
                st["preemption_rate"] * share * dt, dt,
                {"ttft": Dist.lognormal(st["ttft"], reqs), "itl": Dist.lognormal(st["itl"], tokens),
                 "e2e": Dist.lognormal(st["e2e"], reqs), "queue": Dist.lognormal(st["queue_time"], reqs),
                 "prompt": Dist.lognormal(st["prompt_tokens"], reqs),
                 "gen": Dist.lognormal(st["generation_tokens"], reqs)})


def synthesize(sc: Scenario) -> list[Series]:
    """Every raw series of the scenario, as (labels with __name__, [(unix seconds, value), ...])."""
    acc = _Acc()
    prof = PROFILES[(sc.engine, sc.version)]
    simulated = [m for m in sc.models if m.sim is not None]
    if simulated:
        from .sim.emit import emit_simulation
        emit_simulation(acc, sc, prof, simulated)
    for m in sc.models:
        if m.sim is not None:
            continue
        for pod in m.pods:
            restarts = [e for e in m.events if e.restart and (e.pods is None or pod.name in e.pods)]
            fresh = True
            prev_t = None
            for t in sc.times():
                rel = t - sc.start
                st = state(m, pod.name, rel)
                if st is None:
                    fresh = True  # a pod that comes back has restarted: counters start from zero
                    prev_t = None
                    continue
                reset = fresh or any(prev_t is not None and prev_t - sc.start < e.at <= rel for e in restarts)
                dt = 0.0 if reset else t - prev_t
                _emit_pod(acc, sc, prof, m, pod, st, t, dt, reset)
                fresh, prev_t = False, t
    out = acc.series()
    for raw in sc.extra_series:
        out.extend(_promtool_series(raw["series"], raw["values"], sc))
    return out


def target_labels(m: ModelSpec, pod: Pod) -> dict[str, str]:
    target = {**m.labels, "pod": pod.name, "instance": f"{pod.name}:8000", "job": "inferwatch-llm-inference"}
    if pod.role:
        target["role"] = pod.role
    return target


def _emit_pod(acc: _Acc, sc: Scenario, prof: Profile, m: ModelSpec, pod: Pod, st: dict[str, float],
              t: float, dt: float, reset: bool) -> None:
    target = target_labels(m, pod)
    acc.gauge({"__name__": "up", **target}, t, 1.0)
    n_parts = max(1, pod.engines)
    parts = [painted_step(st, dt, 1.0 / n_parts) for _ in range(n_parts)]
    emit_engine(acc, sc, prof, m, pod, target, parts, t, reset, st["prefix_hit_ratio"])
    gpu = {k: st[k] for k in ("engine_active", "tensor_active", "dram_active", "power", "temperature", "sm_clock",
                              "xid", "remapped_rows", "row_remap_failure")}
    gpu.update(fb_used=st["fb_total_mib"] * st["fb_used_ratio"], fb_total=st["fb_total_mib"])
    emit_gpus(acc, sc, m, pod, [(g, True, gpu) for g in range(pod.gpus)], t)


def emit_engine(acc: _Acc, sc: Scenario, prof: Profile, m: ModelSpec, pod: Pod, target: dict[str, str],
                parts: list[Step], t: float, reset: bool, hit_gauge: float | None = None) -> None:
    """The engine's series of one pod: one Step per vLLM DP engine / SGLang DP rank."""
    for part, step in enumerate(parts):
        if sc.engine == "vllm":
            _vllm(acc, prof, {**target, "model_name": m.model, "engine": str(part)}, step, t, reset)
        else:
            sched_base = {**target, "model_name": m.model, "engine_type": "unified"}
            if len(parts) > 1:
                sched_base["dp_rank"] = str(part)
            hit = hit_gauge if hit_gauge is not None else (step.prefix_hits / step.prefix_queries
                                                           if step.prefix_queries else 0.0)
            _sglang_scheduler(acc, prof, sched_base, pod, step, t, reset, hit)
    whole = parts[0]
    for other in parts[1:]:
        whole = whole.merged(other)
    if sc.engine == "sglang":  # one tokenizer process per pod, whatever the DP size
        _sglang_tokenizer(acc, prof, {**target, "model_name": m.model}, whole, t, reset)
    if sc.engine == "vllm":
        http = {**target, "handler": "/v1/chat/completions", "method": "POST"}
        failed = whole.finished["error"]
        acc.counter({"__name__": "http_requests_total", **http, "status": "2xx"}, t, whole.requests - failed, reset)
        acc.counter({"__name__": "http_requests_total", **http, "status": "5xx"}, t, failed, reset)


def _hist(acc: _Acc, name: str, labels: dict[str, str], buckets, d: Dist, t: float, reset: bool) -> None:
    for b in tuple(buckets) + (math.inf,):
        frac = 1.0 if b == math.inf else d.share(b)
        acc.counter({"__name__": f"{name}_bucket", **labels, "le": le_text(b)}, t, d.count * frac, reset)
    acc.counter({"__name__": f"{name}_sum", **labels}, t, d.total, reset)
    acc.counter({"__name__": f"{name}_count", **labels}, t, d.count, reset)


def _vllm(acc, prof: Profile, base, st: Step, t, reset) -> None:
    b = BUCKETS["vllm"]
    acc.gauge({"__name__": "vllm:num_requests_running", **base}, t, st.running)
    acc.gauge({"__name__": "vllm:num_requests_waiting", **base}, t, st.waiting)
    for name in prof.kv_usage:
        acc.gauge({"__name__": name, **base}, t, st.kv_usage)
    reasons = ("stop", "length", "abort") + (("error",) if prof.error_reason else ())
    for reason in reasons:
        acc.counter({"__name__": "vllm:request_success_total", **base, "finished_reason": reason}, t,
                    st.finished[reason], reset)
    acc.counter({"__name__": "vllm:prompt_tokens_total", **base}, t, st.prompt_tokens, reset)
    acc.counter({"__name__": "vllm:generation_tokens_total", **base}, t, st.generation_tokens, reset)
    acc.counter({"__name__": "vllm:num_preemptions_total", **base}, t, st.preemptions, reset)
    for p in prof.prefix:
        acc.counter({"__name__": f"vllm:{p}prefix_cache_queries_total", **base}, t, st.prefix_queries, reset)
        acc.counter({"__name__": f"vllm:{p}prefix_cache_hits_total", **base}, t, st.prefix_hits, reset)
    _hist(acc, "vllm:time_to_first_token_seconds", base, b["ttft"], st.hists["ttft"], t, reset)
    for name in prof.itl:
        _hist(acc, name, base, b["itl"], st.hists["itl"], t, reset)
    _hist(acc, "vllm:e2e_request_latency_seconds", base, b["e2e"], st.hists["e2e"], t, reset)
    _hist(acc, "vllm:request_queue_time_seconds", base, b["queue"], st.hists["queue"], t, reset)
    _hist(acc, "vllm:request_prompt_tokens", base, b["tokens"], st.hists["prompt"], t, reset)
    _hist(acc, "vllm:request_generation_tokens", base, b["tokens"], st.hists["gen"], t, reset)


def _sglang_scheduler(acc, prof: Profile, sched_base, pod: Pod, st: Step, t, reset, hit: float) -> None:
    """One DP rank's scheduler series, repeated by each of its TP ranks."""
    b = BUCKETS["sglang"]
    ranks = []
    for r in range(max(1, pod.tp) if prof.sched_labels else 1):  # without rank labels one rank reports
        labels = dict(sched_base)
        for name in prof.sched_labels:
            labels[name] = str(r) if name == "tp_rank" else "0"
        ranks.append(labels)
    for labels in ranks:  # every TP rank reports the same scheduler values
        acc.gauge({"__name__": "sglang:num_running_reqs", **labels}, t, st.running)
        acc.gauge({"__name__": "sglang:num_queue_reqs", **labels}, t, st.waiting)
        acc.gauge({"__name__": "sglang:token_usage", **labels}, t, st.kv_usage)
        acc.gauge({"__name__": "sglang:cache_hit_rate", **labels}, t, hit)
        acc.gauge({"__name__": "sglang:gen_throughput", **labels}, t, st.generation_tokens / st.dt if st.dt else 0.0)
        if prof.retract == "counter":
            acc.counter({"__name__": "sglang:num_retracted_requests_total", **labels}, t, st.preemptions, reset)
        if prof.retract:
            acc.gauge({"__name__": "sglang:num_retracted_reqs", **labels, "pid": "4242"}, t,
                      round(st.preemptions / st.dt * 5) if st.dt else 0)
        if prof.queue_hist:
            _hist(acc, "sglang:queue_time_seconds", labels, b["queue"], st.hists["queue"], t, reset)


def _sglang_tokenizer(acc, prof: Profile, tok, st: Step, t, reset) -> None:
    """The tokenizer manager's series: one process per pod, so never split by DP rank."""
    b = BUCKETS["sglang"]
    tl = dict(tok)
    if prof.streaming_label:
        tl["is_streaming"] = "true"
    acc.counter({"__name__": "sglang:num_requests_total", **tl}, t, st.requests, reset)
    acc.counter({"__name__": "sglang:prompt_tokens_total", **tl}, t, st.prompt_tokens, reset)
    acc.counter({"__name__": "sglang:generation_tokens_total", **tl}, t, st.generation_tokens, reset)
    cached = {**tok, "cache_source": "total"} if prof.streaming_label else dict(tok)
    acc.counter({"__name__": "sglang:cached_tokens_total", **cached}, t, st.prefix_hits, reset)
    if prof.aborted:
        acc.counter({"__name__": "sglang:num_aborted_requests_total", **tok}, t,
                    st.finished["abort"] + st.finished["error"], reset)
    _hist(acc, "sglang:time_to_first_token_seconds", tl, b["ttft"], st.hists["ttft"], t, reset)
    _hist(acc, "sglang:inter_token_latency_seconds", tok, b["itl"], st.hists["itl"], t, reset)
    _hist(acc, "sglang:e2e_request_latency_seconds", tl, b["e2e"], st.hists["e2e"], t, reset)
    if prof.token_hist:
        _hist(acc, "sglang:prompt_tokens_histogram", tok, b["tokens"], st.hists["prompt"], t, reset)
        _hist(acc, "sglang:generation_tokens_histogram", tok, b["tokens"], st.hists["gen"], t, reset)


def gpu_labels(sc: Scenario, m: ModelSpec, pod: Pod, g: int, attached: bool) -> dict[str, str]:
    """dcgm-exporter's labels for GPU `g` of a pod's node, in the scenario's label layout; a GPU no pod
    uses carries no pod labels (dcgm-exporter's pod mapping only names pods holding the device)."""
    host_label = "hostname" if sc.dcgm == "hostname-lower" else "Hostname"
    labels = {"gpu": str(g), "UUID": f"GPU-{zlib.crc32(f'{pod.name}/{g}'.encode()):08x}",
              "device": f"nvidia{g}", "modelName": "NVIDIA H100 80GB HBM3", host_label: pod.node,
              "pci_bus_id": f"00000000:{g + 1:02X}:00.0", "job": "dcgm-exporter",
              "instance": f"{pod.node}:9400"}
    if not attached:
        if sc.dcgm != "honor":
            labels.update({"namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{pod.node}"})
        return labels
    labels["container"] = "vllm" if sc.engine == "vllm" else "sglang"
    if sc.dcgm == "honor":
        labels.update({"namespace": m.labels.get("namespace", ""), "pod": pod.name})
    else:
        labels.update({"namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{pod.node}",
                       "exported_namespace": m.labels.get("namespace", ""), "exported_pod": pod.name})
    return labels


def emit_gpus(acc: _Acc, sc: Scenario, m: ModelSpec, pod: Pod, gpus: list[tuple[int, bool, dict[str, float]]],
              t: float) -> None:
    """dcgm-exporter's series for (index, attached to the pod, values) of each GPU."""
    for g, attached, v in gpus:
        labels = gpu_labels(sc, m, pod, g, attached)
        for name, value in (("DCGM_FI_PROF_GR_ENGINE_ACTIVE", v["engine_active"]),
                            ("DCGM_FI_DEV_GPU_UTIL", min(100.0, v["engine_active"] * 100 + 20)
                             if v["engine_active"] > 0.01 else 0.0),
                            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", v["tensor_active"]),
                            ("DCGM_FI_PROF_DRAM_ACTIVE", v["dram_active"]),
                            ("DCGM_FI_DEV_FB_USED", v["fb_used"]), ("DCGM_FI_DEV_FB_FREE", v["fb_total"] - v["fb_used"]),
                            ("DCGM_FI_DEV_POWER_USAGE", v["power"]), ("DCGM_FI_DEV_GPU_TEMP", v["temperature"]),
                            ("DCGM_FI_DEV_SM_CLOCK", v["sm_clock"]), ("DCGM_FI_DEV_XID_ERRORS", v["xid"]),
                            ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", v["remapped_rows"]),
                            ("DCGM_FI_DEV_ROW_REMAP_FAILURE", v["row_remap_failure"])):
            acc.gauge({"__name__": name, **labels}, t, value)


# ---- promtool notation ----------------------------------------------------------------------

def _promtool_series(series: str, values: str, sc: Scenario) -> list[Series]:
    """Expand promtool's `input_series` notation (`a+bxn`, `_`) at the scenario's step."""
    import re
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?$", series.strip())
    if not m:
        raise ScenarioError(f"cannot parse series {series!r}")
    labels = {"__name__": m.group(1)}
    for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"', m.group(3) or ""):
        labels[k] = v.encode().decode("unicode_escape")
    out, i = [], 0
    for tok in values.split():
        mm = re.match(r"^(_|-?[\d.e+]+)(?:([+-][\d.e+]+)x(\d+))?$", tok)
        if not mm:
            raise ScenarioError(f"cannot parse values {tok!r} of {series}")
        start, delta, n = mm.group(1), mm.group(2), mm.group(3)
        count = int(n) + 1 if n else 1
        for j in range(count):
            if start != "_":
                out.append((sc.start + i * sc.step, float(start) + (float(delta) * j if delta else 0.0)))
            i += 1
    return [(labels, out)]


def promtool_input_series(series: list[Series], start: float, step: float) -> list[dict[str, str]]:
    """`input_series` entries for promtool (sample i at i*step, `_` where a series has no sample)."""
    out = []
    for labels, samples in sorted(series, key=lambda s: _key(s[0])):
        by_index = {round((t - start) / step): v for t, v in samples}
        last = max(by_index) if by_index else -1
        vals = [_fmt(by_index[i]) if i in by_index else "_" for i in range(last + 1)]
        name = labels["__name__"]
        inner = ", ".join(f'{k}="{_esc(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
        out.append({"series": f"{name}{{{inner}}}", "values": " ".join(vals)})
    return out


def _fmt(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    return repr(round(v, 6)) if not float(v).is_integer() else str(int(v))


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def iter_models(sc: Scenario) -> Iterator[tuple[ModelSpec, Pod]]:
    for m in sc.models:
        for p in m.pods:
            yield m, p
