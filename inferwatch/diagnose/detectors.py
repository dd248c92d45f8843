"""Detectors as data: a small boolean tree of checks, each comparing one signal with a reference.

A `Check` says "signal S is anomalous when S <op> reference", where the reference is a configured
threshold, the series' own baseline (the median before the incident window, times a factor), or its
siblings (the median of the other pods or GPUs of the same model/workload at the same instant).
`queries.py` renders each check as a PromQL filter, so Prometheus returns only the anomalous points;
`All` / `Any` combine checks per entity and timestamp here. A check whose signal has no series in the
scope is "no data": it is skipped by `All`, false in `Any`, and a tree with only such checks is no data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Union

Op = Literal[">", "<", "!="]
Against = Literal["threshold", "baseline", "siblings", "vanished"]


@dataclass(frozen=True)
class Check:
    signal: str
    op: Op
    against: Against
    threshold: str | float = 0.0  # a field of cfg.diagnose.thresholds, or a number
    factor: str | float = 1.0  # a field of cfg.diagnose (change_factor / sibling_factor), or a number
    delta: float = 0.0  # absolute margin on top of the factor: ignores noise on tiny baselines


@dataclass(frozen=True)
class All:
    items: tuple["Rule", ...]


@dataclass(frozen=True)
class Any_:
    items: tuple["Rule", ...]


@dataclass(frozen=True)
class Not:
    item: "Rule"


Rule = Union[Check, All, Any_, Not]


def all_of(*items: Rule) -> All:
    return All(tuple(items))


def any_of(*items: Rule) -> Any_:
    return Any_(tuple(items))


def not_(item: Rule) -> Not:
    return Not(item)


def checks(rule: Rule) -> Iterator[Check]:
    """Every leaf in a fixed (depth-first) order: a check's index is its position here."""
    if isinstance(rule, Check):
        yield rule
    elif isinstance(rule, Not):
        yield from checks(rule.item)
    else:
        for item in rule.items:
            yield from checks(item)


def evaluate(rule: Rule, leaf: Callable[[int], bool | None]) -> bool | None:
    """True / False, or None when every check involved has no data. `leaf(i)` answers check i."""
    counter = iter(range(10_000))

    def walk(r: Rule) -> bool | None:
        if isinstance(r, Check):
            return leaf(next(counter))
        if isinstance(r, Not):
            inner = walk(r.item)
            return None if inner is None else not inner
        results = [walk(item) for item in r.items]  # evaluate all: keeps leaf numbering stable
        known = [x for x in results if x is not None]
        if not known:
            return None
        return all(known) if isinstance(r, All) else any(known)
    return walk(rule)


def gates(rule: Rule) -> dict[int, tuple[int, ...]]:
    """Check index -> the threshold checks beside it in the same `All`. Such a check can only matter
    where one of those holds, so it may be evaluated later, on those entities only (queries.py)."""
    out: dict[int, tuple[int, ...]] = {}
    for direct in _alls(rule):
        limits = tuple(i for item, i in direct if item.against == "threshold")
        for item, i in direct:
            if item.against != "threshold" and limits:
                out[i] = limits
    return out


def partners(rule: Rule) -> dict[int, tuple[int, ...]]:
    """Threshold check index -> the other threshold checks in the same `All`: where none of them holds at
    a step, the check's points there cannot make the entity anomalous (queries.py filters them out)."""
    out: dict[int, tuple[int, ...]] = {}
    for direct in _alls(rule):
        limits = [i for item, i in direct if item.against == "threshold"]
        for i in limits:
            if others := tuple(j for j in limits if j != i):
                out[i] = others
    return out


def _alls(rule: Rule) -> list[list[tuple[Check, int]]]:
    """Per `All` of the tree: its direct checks with their indices."""
    found: list[list[tuple[Check, int]]] = []
    counter = iter(range(10_000))

    def walk(r: Rule) -> list[int]:
        if isinstance(r, Check):
            return [next(counter)]
        if isinstance(r, Not):
            walk(r.item)
            return []
        indices = [walk(item) for item in r.items]
        if isinstance(r, All):
            found.append([(item, ix[0]) for item, ix in zip(r.items, indices) if isinstance(item, Check)])
        return [i for ix in indices for i in ix]
    walk(rule)
    return found
