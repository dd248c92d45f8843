"""The walk from anomalous symptoms down to root causes, and their ranking.

Breadth-first from every anomalous symptom entity, following "can be caused by" edges only into
anomalous causes whose entity is related (same pod, GPU of that pod, or any pod of the model for causes
that act model-wide). A cause entity is explained when an anomalous child related to it went anomalous
no later than it did (plus a tolerance); unexplained cause entities are the root causes.

Mechanisms that every overload moves (a queue, a bigger running batch) are special: any related
anomalous cause beneath one explains it, whatever their onsets (gauges react within a scrape, rate-based
signals lag), and a mechanism never explains a cause above it. A mechanism that is still a root but lies
beneath another root on the same pods is that root's trigger, not a cause of its own: it moves into that
root's `triggers` (e.g. "KV cache exhausted; the running batch grew 2.8x").

Score = node weight x evidence strength x (0.5 + 0.5 x coverage) x onset factor, where coverage is the
share of the affected pods (every pod a reached cause names) that the root cause names, and the onset
factor halves causes that went anomalous after the symptom they are supposed to explain.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import networkx as nx

from ..core.config import Config

from .evidence import Finding, NodeResult, linked
from .scope import Key, pod_key
from .graph import BY_ID, EDGES, SYMPTOMS, Tier

AFTER_SYMPTOM_FACTOR = 0.5
MECHANISMS = frozenset({"queue_backlog", "large_decode_batch"})


@dataclass
class RootCause:
    cause: str
    tier: Tier
    score: float
    findings: list[Finding]
    paths: list[tuple[str, ...]]
    onset: float
    symptom_onset: float | None
    after_symptom: bool
    triggers: list[tuple[str, Finding]] = field(default_factory=list)  # (node, finding) beneath it


def tolerance(cfg: Config, step: float) -> float:
    """Onsets closer than this count as simultaneous: two query steps plus half the rate window
    (latency quantiles come from rates, so they lag the gauges that cause them)."""
    return 2 * step + cfg.recording.rate_window.seconds() / 2


def walk(cfg: Config, g: nx.DiGraph, results: dict[str, NodeResult], models_of_pod: dict[Key, set[str]],
         step: float) -> list[RootCause]:
    tol = tolerance(cfg, step)
    anomalous = {n: r for n, r in results.items() if r.state == "anomalous"}
    by_pod = {n: _index(cfg, r.findings) for n, r in anomalous.items()}
    queue: deque[tuple[str, Finding, tuple[str, ...]]] = deque()
    visited: dict[tuple[str, Key], tuple[str, ...]] = {}
    for s in SYMPTOMS:
        for f in anomalous.get(s, NodeResult(BY_ID[s], "normal")).findings:
            queue.append((s, f, (s,)))
    roots: dict[str, list[tuple[Finding, tuple[str, ...]]]] = {}
    beneath: dict[str, list[tuple[str, Finding]]] = {}  # cause -> anomalous related findings below it
    reached: list[Finding] = []
    while queue:
        node_id, f, path = queue.popleft()
        if (node_id, f.key) in visited:
            continue
        visited[(node_id, f.key)] = path
        node = BY_ID[node_id]
        if node.kind == "cause":
            reached.append(f)
        explained = False
        for child_id in g.successors(node_id):
            if child_id not in anomalous:
                continue
            child = BY_ID[child_id]
            for cf in _related(cfg, node.tier, f, child_id, child.tier, child.reach == "model", anomalous,
                               by_pod, models_of_pod):
                queue.append((child_id, cf, path + (child_id,)))
                if node.kind == "cause":
                    beneath.setdefault(node_id, []).append((child_id, cf))
                if child_id not in MECHANISMS:
                    explained |= cf.onset <= f.onset + tol or node_id in MECHANISMS
        if node.kind == "cause" and not explained:
            roots.setdefault(node_id, []).append((f, path))
    symptom_findings = [(s, BY_ID[s].tier, f) for s in SYMPTOMS for f in anomalous.get(s, _EMPTY).findings]
    affected = {pod_key(cfg, f.labels) for f in reached}
    sub = g.subgraph(anomalous)
    ranked = [_rank(cfg, sub, cause, items, symptom_findings, affected, models_of_pod, tol)
              for cause, items in roots.items()]
    return sorted(_demote_mechanisms(ranked, beneath), key=lambda r: (-r.score, r.cause))


def _demote_mechanisms(ranked: list[RootCause], beneath: dict) -> list[RootCause]:
    """Mechanism roots found beneath another root (on its pods: `beneath` holds related findings only)
    become that root's triggers; a root's triggers are the mechanisms and other roots beneath it."""
    root_ids = {r.cause for r in ranked}
    kept = []
    for r in ranked:
        r.triggers = _unique([(n, f) for n, f in beneath.get(r.cause, ()) if n in MECHANISMS or n in root_ids])
    for r in ranked:
        owners = [o for o in ranked if o is not r and o.cause not in MECHANISMS
                  and any(n == r.cause for n, _ in o.triggers)] if r.cause in MECHANISMS else []
        if not owners:
            kept.append(r)
    return kept


def _unique(items: list[tuple[str, Finding]]) -> list[tuple[str, Finding]]:
    seen, out = set(), []
    for node, f in items:
        if (node, f.key) not in seen:
            seen.add((node, f.key))
            out.append((node, f))
    return out


_EMPTY = NodeResult(BY_ID[SYMPTOMS[0]], "normal")


def _index(cfg: Config, findings: list[Finding]) -> dict[Key, list[Finding]]:
    out: dict[Key, list[Finding]] = {}
    for f in findings:
        out.setdefault(pod_key(cfg, f.labels), []).append(f)
    return out


def _related(cfg, tier: Tier, f: Finding, child_id: str, child_tier: Tier, model_wide: bool, anomalous,
             by_pod, models_of_pod) -> list[Finding]:
    """Findings of `child_id` related to `f`; pod and GPU findings are looked up by pod first."""
    if tier != "model" and not model_wide:
        candidates = by_pod[child_id].get(pod_key(cfg, f.labels), [])
    else:
        candidates = anomalous[child_id].findings
    return [cf for cf in candidates
            if linked(cfg, tier, f.labels, child_tier, cf.labels, models_of_pod, model_only=model_wide)]


def _rank(cfg: Config, sub: nx.DiGraph, cause: str, items, symptom_findings, affected: set[Key], models_of_pod,
          tol: float) -> RootCause:
    node = BY_ID[cause]
    unique: dict[Key, Finding] = {}
    for f, _path in items:
        unique.setdefault(f.key, f)
    findings = sorted(unique.values(), key=lambda f: (-f.strength(), f.key))
    onset = min(f.onset for f in findings)
    related = [(s, sf.onset) for s, tier, sf in symptom_findings
               if any(linked(cfg, tier, sf.labels, node.tier, f.labels, models_of_pod,
                             model_only=node.reach == "model") for f in findings)]
    symptom_onset = min(o for _, o in related) if related else None
    # One chain per symptom it explains: the shortest through anomalous nodes.
    paths = {tuple(nx.shortest_path(sub, s, cause)) for s, _ in related if nx.has_path(sub, s, cause)}
    if not paths:  # a symptom of another model reached it through a model-wide cause
        paths = {items[0][1]}
    after = symptom_onset is not None and onset > symptom_onset + tol
    pods = {pod_key(cfg, f.labels) for f in findings}
    coverage = len(pods & affected) / len(affected) if affected else 1.0
    strength = max(f.strength() for f in findings)
    score = node.weight * strength * (0.5 + 0.5 * coverage) * (AFTER_SYMPTOM_FACTOR if after else 1.0)
    # Shortest first; among equals, the path from the most specific symptom (fewest possible causes).
    ordered = sorted(paths, key=lambda p: (len(p), len(EDGES.get(p[0], ())), p))
    return RootCause(cause, node.tier, round(score, 3), findings, ordered, onset, symptom_onset, after)
