"""From one node's query result to findings: which entities are anomalous, since when, and the numbers.

Prometheus returns only the points where each check holds (see queries.py). Here the detector tree is
evaluated per entity and timestamp; an entity is anomalous when the tree holds for at least
`min_persistence` of the incident window (or at each of its last `ONGOING` points), and its onset is
the start of the run of anomalous points that reaches into the window (gaps of up to two steps are bridged).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from ..core.config import Config
from ..core.schema import sibling_keys

from .detectors import Check, checks, evaluate
from .graph import Node, Tier
from .queries import PART
from .scope import Key, Window, pod_key
from .signals import SIGNALS, keys

State = Literal["anomalous", "normal", "no_data", "error", "skipped"]  # skipped: below no anomalous symptom
# A condition that holds at each of the window's last ONGOING points is an incident under way, even when
# it began too late in the window to reach `min_persistence` (a fault minutes old at the diagnosis time).
ONGOING = 3


@dataclass(frozen=True)
class Evidence:
    signal: str
    op: str
    against: str  # threshold | baseline | siblings | vanished
    value: float | None
    reference: float | None
    unit: str

    def to_dict(self) -> dict:
        return {"signal": self.signal, "op": self.op, "against": self.against,
                "value": _round(self.value), "reference": _round(self.reference), "unit": self.unit}


@dataclass
class Finding:
    """One anomalous entity (a model, a pod of a model, or a GPU) of one node."""
    tier: Tier
    labels: dict[str, str]
    onset: float
    persistence: float
    evidence: list[Evidence]

    @property
    def key(self) -> Key:
        return tuple(sorted(self.labels.items()))

    def strength(self) -> float:
        """0-1: how long the condition held times how far beyond its reference the values are."""
        mags = [_magnitude(e) for e in self.evidence] or [0.5]
        return self.persistence * (0.5 + 0.5 * max(mags))


@dataclass
class NodeResult:
    node: Node
    state: State
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def _magnitude(e: Evidence) -> float:
    if e.value is None or e.reference is None or e.against == "vanished" or e.op == "!=":
        return 1.0
    big, small = (e.value, e.reference) if e.op == ">" else (e.reference, e.value)
    if small <= 0:
        return 1.0
    return max(0.0, min(1.0, 1 - small / big)) if big > 0 else 0.0


def parse(result: list[dict]) -> dict[str, dict[Key, dict[int, float]]]:
    """Series by part tag, then entity key, then timestamp (whole seconds) -> value."""
    out: dict[str, dict[Key, dict[int, float]]] = {}
    for series in result:
        labels = dict(series["metric"])
        part = labels.pop(PART, "")
        labels.pop("__name__", None)
        points = {int(round(float(t))): float(v) for t, v in series.get("values", [])}
        out.setdefault(part, {})[tuple(sorted(labels.items()))] = points
    return out


def linked(cfg: Config, a_tier: Tier, a: dict[str, str], b_tier: Tier, b: dict[str, str],
           models_of_pod: dict[Key, set[str]], model_only: bool = False) -> bool:
    """Two entities are related when they agree on every identity label both tiers have (model_only:
    only on the model's identity). A GPU carries no model label: it serves the models of its pod."""
    names = set(keys(cfg, a_tier)) & set(keys(cfg, b_tier))
    if model_only:
        names &= set(cfg.labels.model_keys())
    if any(a.get(k, "") != b.get(k, "") for k in names):
        return False
    model = cfg.labels.model
    for gpu, other in ((a, b), (b, a)):
        tiers = (a_tier, b_tier) if gpu is a else (b_tier, a_tier)
        if tiers[0] == "gpu" and tiers[1] != "gpu" and model in other:
            served = models_of_pod.get(pod_key(cfg, gpu))
            if served is not None and other[model] not in served:
                return False
    return True


def detect(cfg: Config, node: Node, win: Window, result: list[dict], available: set[str],
           models_of_pod: dict[Key, set[str]]) -> NodeResult:
    """`available`: the signals whose metrics exist in this Prometheus (the others are no data)."""
    parts = parse(result)
    leaves = list(checks(node.detector))
    has_data = {i: c.signal in available for i, c in enumerate(leaves)}
    if not any(has_data.values()):
        return NodeResult(node, "no_data")
    grid = _grid(win)
    in_window = [t for t in grid if t > win.window_start]
    hits = {i: parts.get(f"c{i}", {}) for i in range(len(leaves))}
    candidates = {k for i, c in enumerate(leaves) if SIGNALS[c.signal].tier == node.tier for k in hits[i]}
    # Unless the detector can hold where no check does (a `Not`), only the steps where one held can count.
    blind = evaluate(node.detector, lambda i: False if has_data[i] else None) is True
    findings = []
    for key in sorted(candidates):
        labels = dict(key)
        leaf_at, seen = _leaf_lookup(cfg, node, leaves, hits, has_data, labels, models_of_pod)
        steps = grid if blind else [t for t in grid if t in seen]
        anomalous = [t for t in steps if evaluate(node.detector, lambda i, t=t: leaf_at(i, t)) is True]
        window_hits = [t for t in anomalous if t > win.window_start]
        persistence = len(window_hits) / max(1, len(in_window))
        if not window_hits or (persistence < cfg.diagnose.min_persistence
                               and not set(in_window[-ONGOING:]) <= set(window_hits)):
            continue
        evidence = _evidence(cfg, node, leaves, parts, key, labels, set(window_hits))
        findings.append(Finding(node.tier, labels, _onset(anomalous, window_hits[-1], win.step), persistence,
                                evidence))
    return NodeResult(node, "anomalous" if findings else "normal", findings)


def _grid(win: Window) -> list[int]:
    n = int(round((win.at - win.start) / win.step))
    return [int(round(win.start + k * win.step)) for k in range(n + 1)]


def _leaf_lookup(cfg, node: Node, leaves: list[Check], hits, has_data, labels, models_of_pod):
    """(leaf, seen): leaf(i, t) says whether check i holds for this entity (or, for another tier, a
    related entity) at t; `seen` holds every step where some check does."""
    related: dict[int, list[dict[int, float]]] = {}
    for i, c in enumerate(leaves):
        tier = SIGNALS[c.signal].tier
        if tier == node.tier:
            related[i] = [hits[i].get(tuple(sorted(labels.items())), {})]
        else:
            related[i] = [pts for k, pts in hits[i].items()
                          if linked(cfg, node.tier, labels, tier, dict(k), models_of_pod)]

    def leaf(i: int, t: int) -> bool | None:
        if not has_data[i]:
            return None
        return any(t in pts for pts in related[i])
    return leaf, {t for found in related.values() for pts in found for t in pts}


def _onset(anomalous: list[int], last: int, step: float) -> float:
    """Start of the run of anomalous points ending at `last`, bridging gaps up to two steps."""
    run_start = last
    for t in reversed([x for x in anomalous if x <= last]):
        if run_start - t > 2 * step + 1:
            break
        run_start = t
    return float(run_start)


def _evidence(cfg: Config, node: Node, leaves: list[Check], parts, key: Key, labels: dict[str, str],
              times: set[int]) -> list[Evidence]:
    out = []
    for i, c in enumerate(leaves):
        spec = SIGNALS[c.signal]
        if spec.tier != node.tier:
            pts = [v for k, p in parts.get(f"c{i}", {}).items() if _same_pod(cfg, labels, dict(k))
                   for t, v in p.items() if t in times]
        else:
            pts = [v for t, v in parts.get(f"c{i}", {}).get(key, {}).items() if t in times]
        if not pts:
            continue
        out.append(Evidence(c.signal, c.op, c.against, fmean(pts) if c.against != "vanished" else None,
                            _reference(cfg, c, i, parts, key, labels, times), spec.unit))
    return out


def _same_pod(cfg: Config, a: dict[str, str], b: dict[str, str]) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in cfg.labels.join_keys())


def _reference(cfg: Config, c: Check, i: int, parts, key: Key, labels: dict[str, str],
               times: set[int]) -> float | None:
    if c.against == "threshold":
        spec = c.threshold
        return float(getattr(cfg.diagnose.thresholds, spec)) if isinstance(spec, str) else float(spec)
    if c.against == "baseline":
        pts = [v for t, v in parts.get(f"b{i}", {}).get(key, {}).items() if t in times]
        return fmean(pts) if pts else None
    if c.against == "siblings":
        group = {k: labels[k] for k in sibling_keys(cfg.labels, SIGNALS[c.signal].tier) if labels.get(k)}
        vals = [v for gk, pts in parts.get(f"s{i}", {}).items() if dict(gk) == group
                for t, v in pts.items() if t in times]
        return fmean(vals) if vals else None
    return None
