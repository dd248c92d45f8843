"""Synthetic inference clusters for benchmarks, built from the fixture scenario format.

A cluster is N pods spread over M models; models alternate between vLLM (two data-parallel engines per
pod, label `engine`) and SGLang (TP=8, every scheduler rank reporting, labels `tp_rank`/`pp_rank`/...).
Every pod has 8 GPUs (`gpus`) with dcgm-exporter series. A scenario holds one engine version, so a cluster is a
few scenarios, one per engine profile; `series()` synthesizes them all with `scenario.synthesize`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from inferwatch.sandbox import scenario
from inferwatch.core.config import duration_seconds

# (engine, version, pod shape): the engine/rank labels a real deployment of that profile carries.
PROFILES = (
    ("vllm", "0.33", {"gpus": 8, "engines": 2}),
    ("sglang", "0.5.23", {"gpus": 8}),  # TP=8; its reporting ranks: ClusterSpec.sglang_ranks
)
PODS_PER_NODE = 1  # 8 GPUs per pod fill an 8-GPU node


@dataclass(frozen=True)
class ClusterSpec:
    pods: int
    models: int
    end: float           # unix seconds of the last sample ("now")
    duration: str = "7m"  # history: the 5m rate window plus two minutes
    step: str = "30s"
    # SGLang scheduler ranks reporting per pod: 8 (TP=8 with --enable-metrics-for-all-schedulers, the worst
    # case) or 1 (SGLang's default: only the stats-logging rank reports).
    sglang_ranks: int = 8
    gpus: int = 8  # GPUs per pod; vLLM runs two data-parallel engines from 2 GPUs, SGLang TP=min(8, gpus)

    def __post_init__(self) -> None:
        if self.pods < 1 or self.models < 1:
            raise ValueError("a cluster needs at least one pod and one model")
        if not 1 <= self.sglang_ranks <= 8:
            raise ValueError(f"sglang_ranks must be 1 to 8 (TP=8), got {self.sglang_ranks}")
        if not 1 <= self.gpus <= 8:
            raise ValueError(f"gpus must be 1 to 8 per pod, got {self.gpus}")
        if self.models > self.pods:
            raise ValueError(f"{self.models} models need at least as many pods (got {self.pods})")


def scenarios(spec: ClusterSpec, models_per_part: int | None = None) -> list[scenario.Scenario]:
    """One scenario per engine profile (model i uses profile i % len(PROFILES)), split into parts of at
    most `models_per_part` models, so a large cluster is synthesized a part at a time."""
    seconds = duration_seconds(spec.duration)
    start = datetime.fromtimestamp(spec.end - seconds, tz=timezone.utc).isoformat()
    by_profile: dict[int, list[int]] = {}
    for model in range(spec.models):
        by_profile.setdefault(model % len(PROFILES), []).append(model)
    out = []
    for index, models in sorted(by_profile.items()):
        engine, version, _shape = PROFILES[index]
        size = models_per_part or len(models)
        for part in range(0, len(models), size):
            out.append(scenario.from_dict({
                "name": f"bench-{engine}-{spec.pods}-{part}", "engine": engine, "version": version,
                "start": start, "duration": spec.duration, "step": spec.step,
                "models": [_model(spec, m) for m in models[part:part + size]]}))
    return out


def _model(spec: ClusterSpec, model: int) -> dict:
    engine, _version, shape = PROFILES[model % len(PROFILES)]
    first, count = _pod_range(spec, model)
    workload = f"{engine}-m{model:03d}"
    shape = {**shape, "gpus": spec.gpus}
    if engine == "sglang":
        shape = {**shape, "tp": min(spec.sglang_ranks, spec.gpus)}
    elif spec.gpus < 2:
        shape = {**shape, "engines": 1}
    pods = [{"name": f"{workload}-{i}", "node": f"gpu-node-{(first + i) // PODS_PER_NODE:05d}", **shape}
            for i in range(count)]
    return {"model": f"bench/model-{model:03d}",
            "labels": {"namespace": f"team-{model % 7}", "workload_name": workload, "backend": engine},
            "pods": pods,
            # vary load a little per model so aggregations do not see identical values
            "baseline": {"request_rate": 1.0 + model % 5, "kv_usage": 0.3 + 0.05 * (model % 9)}}


def _pod_range(spec: ClusterSpec, model: int) -> tuple[int, int]:
    """First pod index and pod count of a model: pods split as evenly as possible."""
    base, extra = divmod(spec.pods, spec.models)
    first = model * base + min(model, extra)
    return first, base + (1 if model < extra else 0)


def parts(spec: ClusterSpec, pods_per_part: int) -> Iterator[list[scenario.Series]]:
    """The cluster's series, one part (about `pods_per_part` pods) at a time: only one part is in memory."""
    per_model = max(1, spec.pods // spec.models)
    for sc in scenarios(spec, max(1, pods_per_part // per_model)):
        yield scenario.synthesize(sc)
