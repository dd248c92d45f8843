"""Simulated inference clusters for the rule benchmarks, at any size, synthesized cheaply.

A cluster is N pods spread over M models; models alternate between vLLM (two data-parallel engines per
pod, label `engine`) and SGLang (TP=8, `sglang_ranks` scheduler ranks reporting, labels `tp_rank`/...).
Every pod has 8 GPUs (`gpus`) with dcgm-exporter series labelled as the Helm chart labels them.

The series come from the serving simulator (inferwatch/sandbox/sim/), as every scenario's do: what
clients send (`workload:`) and what goes wrong (`faults:`), never painted values. The simulator's cost
grows with the pods, so a few templates per engine profile are simulated (one model of the largest
model's pod count each; `VARIANTS` load levels, the last with a throttled GPU) and each model of the
cluster repeats one under its own model, namespace, workload, pod and node names and its own GPU UUIDs
(joins on the UUID stay one-to-one), as bench/bench_diagnose.py does for one model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from inferwatch.core.config import duration_seconds
from inferwatch.sandbox import scenario

# (engine, version, pod shape): the engine/rank labels a real deployment of that profile carries.
PROFILES = (
    ("vllm", "0.33", {"gpus": 8, "engines": 2}),
    ("sglang", "0.5.23", {"gpus": 8}),  # TP=8; its reporting ranks: ClusterSpec.sglang_ranks
)
PODS_PER_NODE = 1  # 8 GPUs per pod fill an 8-GPU node
# Templates per profile; model i of a profile repeats template i % VARIANTS. Each is a load level
# (requests per second per pod); the last also has one GPU capped at 1,200 MHz from minute 2.
VARIANTS = (2.0, 3.0, 4.0)
# Names the templates are simulated under; a copy substitutes its own (str.format_map fields).
_TEMPLATE = {"model": "tplmodel", "ns": "tplns", "w": "tplw"}
_NODE = re.compile(r"tpln-(\d+)")
_POD = re.compile(r"^tplw-(\d+)$")


@dataclass(frozen=True)
class ClusterSpec:
    pods: int
    models: int
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

    def pod_range(self, model: int) -> tuple[int, int]:
        """First pod index and pod count of a model: pods split as evenly as possible."""
        base, extra = divmod(self.pods, self.models)
        return model * base + min(model, extra), base + (1 if model < extra else 0)


@dataclass(frozen=True)
class _Series:
    """One template series: its label values, which of them name the copy (format fields), its pod."""
    labels: tuple[tuple[str, str, bool], ...]  # (name, value or format string, is a format string)
    pod: int  # index of the pod it belongs to in the template, -1 for none
    samples: list[tuple[float, float]]  # times from 0 (the first sample)


def template(spec: ClusterSpec, profile: int, variant: int) -> scenario.Scenario:
    """The scenario one template is simulated from: a model of the largest model's pod count."""
    engine, version, shape = PROFILES[profile]
    shape = {**shape, "gpus": spec.gpus}
    if engine == "sglang":
        shape = {**shape, "tp": min(spec.sglang_ranks, spec.gpus)}
    elif spec.gpus < 2:
        shape = {**shape, "engines": 1}
    pods = spec.pod_range(0)[1]
    per_pod = VARIANTS[variant]
    faults = ([{"kind": "clock_cap", "at": "2m", "ramp": "1m", "pods": [f"{_TEMPLATE['w']}-0"], "gpus": [0],
                "mhz": 1200}] if variant == len(VARIANTS) - 1 else [])
    return scenario.from_dict({
        "name": f"bench-{engine}-{variant}", "engine": engine, "version": version,
        "start": "1970-01-01T00:00:00+00:00", "duration": spec.duration, "step": spec.step,
        "seed": 100 * profile + variant,
        "models": [{"model": _TEMPLATE["model"],
                    "labels": {"namespace": _TEMPLATE["ns"], "workload_name": _TEMPLATE["w"], "backend": engine},
                    "pods": [{"name": f"{_TEMPLATE['w']}-{i}", "node": f"tpln-{i}", **shape} for i in range(pods)],
                    "workload": {"rate": per_pod * pods}, "faults": faults}]})


def _formatted(name: str, value: str) -> tuple[str, str, bool]:
    out = value.replace("{", "{{").replace("}", "}}")
    for field, placeholder in _TEMPLATE.items():
        out = out.replace(placeholder, "{" + field + "}")
    out = _NODE.sub(lambda m: "{n" + m[1] + "}", out)
    if name == "UUID":
        out += "{u}"
    return name, out, out != value


def _prepare(series: list[scenario.Series]) -> list[_Series]:
    out = []
    for labels, samples in series:
        owner = _POD.match(labels.get("exported_pod") or labels.get("pod") or "")
        out.append(_Series(tuple(_formatted(k, v) for k, v in labels.items()), int(owner[1]) if owner else -1,
                           samples))
    return out


class Cluster:
    """The templates of a cluster, simulated once; `parts` writes the cluster out a few models at a time."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        keys = sorted({self._template_of(m) for m in range(spec.models)})
        self.templates = {key: _prepare(scenario.synthesize(template(spec, *key))) for key in keys}
        step = duration_seconds(spec.step)
        self.duration = duration_seconds(spec.duration) // step * step  # the last sample's time from the first

    def _template_of(self, model: int) -> tuple[int, int]:
        profile = model % len(PROFILES)
        return profile, (model // len(PROFILES)) % len(VARIANTS)

    def model(self, model: int, shifted: dict[tuple[int, int], list[list[tuple[float, float]]]]) \
            -> Iterator[scenario.Series]:
        """Model `model`'s series: its template renamed, with the template's samples as `shifted`."""
        key = self._template_of(model)
        first, count = self.spec.pod_range(model)
        engine = PROFILES[key[0]][0]
        names = {"model": f"bench/model-{model:03d}", "ns": f"team-{model % 7}", "w": f"{engine}-m{model:03d}",
                 "u": f"-{model:04d}",
                 **{f"n{i}": f"gpu-node-{(first + i) // PODS_PER_NODE:05d}" for i in range(count)}}
        for s, samples in zip(self.templates[key], shifted[key]):
            if s.pod < count:
                yield {k: v.format_map(names) if f else v for k, v, f in s.labels}, samples

    def parts(self, pods_per_part: int, end: float) -> Iterator[list[scenario.Series]]:
        """The cluster's series, about `pods_per_part` pods at a time, the last sample at `end` (unix
        seconds). Copies share their template's (shifted) sample lists: memory is one part's labels."""
        shift = end - self.duration
        shifted = {key: [[(t + shift, v) for t, v in s.samples] for s in series]
                   for key, series in self.templates.items()}
        size = self._models_per_part(pods_per_part)
        for part in range(0, self.spec.models, size):
            yield [s for m in range(part, min(part + size, self.spec.models)) for s in self.model(m, shifted)]

    def part_count(self, pods_per_part: int) -> int:
        """How many parts `parts` writes (each its own blocks, which overlap in time)."""
        return -(-self.spec.models // self._models_per_part(pods_per_part))

    def _models_per_part(self, pods_per_part: int) -> int:
        return max(1, pods_per_part // max(1, self.spec.pods // self.spec.models))
