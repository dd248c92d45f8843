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

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from ..core.promql import escape_value
from .exposition import (PROFILES, Profile, Series, _Acc, _key, emit_engine, emit_gpus, painted_step,
                         target_labels)
from ..core.config import duration_seconds

if TYPE_CHECKING:
    from .sim.cluster import ModelSim

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
    # serving surfaces, emitted only when on (non-zero)
    "spec_accept_rate": 0.0,      # speculative decoding: accepted / draft tokens (3 draft tokens a step)
    "kv_transfer_time": 0.0,      # prefill/decode: seconds per KV transfer (one transfer per request)
    "kv_transfer_failures": 0.0,  # failed KV transfers / s
    "lora_max": 0.0, "lora_running": 0.0, "lora_waiting": 0.0,  # LoRA adapter slots, in use, waited for
}


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
    dcgm_counters: str = "default"  # default | custom: dcgm-exporter runs a custom counters CSV (sim/emit.py)
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
                                                                "workload", "serving", "faults", "spare_gpus",
                                                                "transfer", "replicas")
                                           if k in data}]
    models = []
    for m in models_data:
        if any(k in m for k in ("workload", "serving", "faults", "transfer")) or "events" not in m and "baseline" not in m \
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
                    dcgm=data.get("dcgm", "exported"), dcgm_counters=_one_of(data, "dcgm_counters", ("default", "custom")),
                    extra_series=data.get("series") or [],
                    seed=int(data.get("seed", 0)), kube_state_metrics=bool(data.get("kube_state_metrics")))


def _one_of(data: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = str(data.get(key, allowed[0]))
    if value not in allowed:
        raise ScenarioError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


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


# ---- what one engine did in one sample period -------------------------------------------------


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
        inner = ", ".join(f'{k}="{escape_value(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
        out.append({"series": f"{name}{{{inner}}}", "values": " ".join(vals)})
    return out


def _fmt(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    return repr(round(v, 6)) if not float(v).is_integer() else str(int(v))


def iter_models(sc: Scenario) -> Iterator[tuple[ModelSpec, Pod]]:
    for m in sc.models:
        for p in m.pods:
            yield m, p
