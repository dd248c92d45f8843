"""What one diagnosis looks at: the scope (label values), the time frame, and the keys of its entities.

Scope values are label values from a user or an alert; they reach queries only as `Matcher` values (quoted
by the PromQL tree) or through `promql.set_label` (which doubles `$`), never as PromQL text.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.config import Config
from ..core.promql import Matcher
from ..core.signals import GPU, MODEL

Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scope:
    """What to diagnose; every field optional (values are label values, escaped in every query)."""
    namespace: str | None = None
    workload: str | None = None
    model: str | None = None
    pod: str | None = None
    cluster: str | None = None

    def matchers(self, cfg: Config, level: str) -> tuple[Matcher, ...]:
        """Equality matchers for a recorded series of `level` (GPU series carry no model label)."""
        lb = cfg.labels
        pairs = [(lb.cluster, self.cluster), (lb.namespace, self.namespace), (lb.workload, self.workload)]
        if level != GPU:
            pairs.append((lb.model, self.model))
        if level != MODEL:
            pairs.append((lb.pod, self.pod))
        return tuple(Matcher(name, value) for name, value in pairs if name and value)

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class Window:
    """The time frame of one diagnosis (unix seconds)."""
    at: float
    window: float
    baseline: float
    step: float

    @property
    def start(self) -> float:
        """First point of the range queries: the window and as much again before it."""
        return self.at - self.window - min(self.window, self.baseline)

    @property
    def lookback_start(self) -> float:
        """Start of the baseline."""
        return self.at - self.window - self.baseline

    @property
    def window_start(self) -> float:
        return self.at - self.window

    @property
    def baseline_step(self) -> float:
        return max(self.step, self.baseline / 30)


def pod_key(cfg: Config, labels: dict[str, str]) -> Key:
    """A pod's identity (cluster, namespace, pod) from any series' labels."""
    return tuple((k, labels.get(k, "")) for k in cfg.labels.join_keys())


def pod_matchers(cfg: Config, pods: set[Key]) -> tuple[Matcher, ...]:
    """Regex matchers selecting these pods (or a few more: each label is matched on its own)."""
    out = []
    for name in cfg.labels.join_keys():
        out.append(Matcher.one_of(name, (dict(key).get(name, "") for key in pods)))
    return tuple(out)
