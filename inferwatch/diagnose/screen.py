"""A GPU node's first question, asked once per GPU: which GPUs can hold its detector at some step?

A GPU node's range query pays Prometheus a join, a comparison and an aggregation per GPU and step
(8,000 GPUs at 1,000 pods), though a diagnosis names a handful. The screen is one instant query: each
check on bounds of its signal over the frame (`core.bounds`: `max_over_time` of a gauge, a counter's
increase...), combined as the detector combines the checks. It is a necessary condition, so a GPU it
drops holds no check at any step, and the node's range query then reads only the GPUs it kept
(`UUID=~`, queries.node_query). Where an `All` has thresholds, only they are screened (the cheapest
and most selective checks; a pod's threshold through the GPU inventory); checks it cannot bound (a
`Not`, a rebuilt series' baseline compared with `!=`) let every GPU through their branch. With the rules
deployed, a threshold on a GPU fault signal is screened on its sparse record (only the GPUs past a floor:
core/records.py gpu_high, planner.Source.high), a handful of series instead of one per GPU.
"""
from __future__ import annotations

from ..core import promql
from ..core.bounds import Frame, bound
from ..core.config import Config
from ..core.promql import Agg, BinOp, Expr, Num, Selector, is_info
from ..core.schema import sibling_keys

from .detectors import All, Any_, Check, Not, Rule
from .queries import GPU_UUID, NodeQuery, baseline_median, node_tier_of, setting, shift
from .scope import Window
from .signals import keys

_ANY = "any"  # the branch cannot be screened: every GPU may hold it
_NONE = "none"  # no signal here: false in an Any, skipped by an All (detectors.py)


def screen_query(cfg: Config, q: NodeQuery) -> str | None:
    """The UUIDs of the GPUs that can hold the node's detector in its frame, or None (read them all)."""
    if q.text is None or q.node.tier != "gpu":
        return None
    inventory = _inventory(q)
    frame = _frame(q.window)

    def mine(rule: Rule) -> bool:
        return isinstance(rule, Check) and node_tier_of(rule) == q.node.tier

    def bounded(chain: list[Check]) -> Expr | str:
        """The chain's bound, on its signal's fault record (only GPUs past a floor: core/records.py
        gpu_high) where the chain is one threshold at or past that floor."""
        c, src = chain[0], q.sources[chain[0].signal]
        if src.expr is None:
            return _NONE
        s = src.expr
        if (src.high is not None and len(chain) == 1 and c.against == "threshold" and c.op == ">"
                and setting(cfg, c.threshold, cfg.diagnose.thresholds) >= src.floor):
            s = src.high
        return _chain(cfg, chain, s, q.window) or _ANY

    def leaf(check: Check) -> Expr | str:
        s = q.sources[check.signal].expr
        if s is None:
            return _NONE
        if mine(check):
            return bounded([check])
        if check.against != "threshold" or inventory is None:
            return _ANY
        # another tier's threshold (requests waiting on the GPU's pod), through the GPU inventory
        shared = tuple(k for k in keys(cfg, node_tier_of(check)) if k in keys(cfg, q.node.tier))
        held = _chain(cfg, [check], s, q.window)
        info = bound(inventory, True, frame)
        if held is None or info is None:
            return _ANY
        return BinOp("and", Agg("group", info, by=(GPU_UUID, *shared)), held, on=shared)

    def visit(rule: Rule) -> Expr | str:
        if isinstance(rule, Check):
            return leaf(rule)
        if isinstance(rule, Not):
            return _ANY
        if isinstance(rule, All) and any(mine(c) and c.against == "threshold" for c in rule.items):
            parts = _led(rule)
        else:
            parts = [visit(item) for item in rule.items]
        exprs = [p for p in parts if not isinstance(p, str)]
        if isinstance(rule, Any_):
            if _ANY in parts:
                return _ANY
            return promql.any_of(exprs) if exprs else _NONE
        if not exprs:
            return _NONE if all(p == _NONE for p in parts) else _ANY
        out = exprs[0]
        for e in exprs[1:]:
            out = BinOp("and", out, e, on=(GPU_UUID,))
        return out

    def _led(rule: All) -> list[Expr | str]:
        """An All with thresholds: its thresholds, and its other tier's (through the GPU inventory); its
        other checks are left out (each costs reads of every GPU), except where another tier's threshold
        is there too: a GPU idling while its pod queues is common, idler than its baseline rare, so
        there the baselines on a threshold's signal and side filter that threshold's bound in turn."""
        partnered = any(isinstance(c, Check) and not mine(c) and c.against == "threshold" for c in rule.items)
        parts: list[Expr | str] = []
        for c in rule.items:
            if mine(c) and c.against == "threshold":
                assert isinstance(c, Check)
                chained = [b for b in rule.items if partnered and mine(b) and b.against == "baseline"
                           and b.signal == c.signal and b.op == c.op]
                parts.append(bounded([c, *chained]))
            elif isinstance(c, Check) and not mine(c) and c.against == "threshold":
                parts.append(leaf(c))
        return parts

    found = visit(q.node.detector)
    if isinstance(found, str):
        return None
    out: Expr = Agg("group", found, by=(GPU_UUID,))
    if inventory is not None and inventory.matchers:  # a scope: the GPUs its pods held
        out = BinOp("and", out, bound(inventory, True, frame), on=(GPU_UUID,))
    return promql.check(out)


def _frame(win: Window) -> Frame:
    """The steps of the node's range query: from the window's start (with as much again before it)."""
    return Frame(span=win.at - win.start, at=win.at)


def _inventory(q: NodeQuery) -> Selector | None:
    """The recorded GPU inventory (`llm_gpu:info`, with the scope's matchers) the node's GPU signals
    join, or None where it is rebuilt from raw series."""
    for src in q.sources.values():
        for sel in promql.selectors(src.expr) if src.expr is not None else ():
            if is_info(sel) and sel.metric.startswith("llm_gpu:"):
                return sel
    return None


def _chain(cfg: Config, chain: list[Check], s: Expr, win: Window) -> Expr | None:
    """Where the checks of `chain` (one signal, one direction) can all hold at some step of the window's
    frame: one bound of the signal, filtered by each check in turn (a filter keeps the bound's value)."""
    frame = _frame(win)
    first = chain[0]
    up = first.op == ">"
    if first.against == "siblings":
        group = sibling_keys(cfg.labels, node_tier_of(first))
        edge = bound(s, up, frame, group)
        ref = bound(Agg("quantile", s, by=group, param=Num(0.5)), not up, frame, group)
        if edge is None or ref is None:
            return None
        factor = setting(cfg, first.factor, cfg.diagnose)
        return BinOp(first.op, edge, shift(ref, first.op, factor, first.delta), on=group, group_left=())
    if first.op == "!=":
        return _changed(first, s, win)
    out = bound(s, up, frame)
    for check in chain:
        if out is None:
            return None
        if check.against == "threshold":
            out = promql.sift(out, check.op, setting(cfg, check.threshold, cfg.diagnose.thresholds))
        elif check.against == "baseline":
            ref = _baseline(check, s, win)
            factor = setting(cfg, check.factor, cfg.diagnose)
            out = None if ref is None else BinOp(check.op, out, shift(ref, check.op, factor, check.delta))
        else:
            return None
    return out


def _baseline(check: Check, s: Expr, win: Window) -> Expr | None:
    """The baseline a check compares with, or a bound of it on the check's side (never tighter)."""
    if isinstance(s, Selector):  # a recorded series: its median reads raw samples, once
        return baseline_median(s, win)
    # the median of a rebuilt series lies within its bounds over the baseline period
    return bound(s, check.op == "<", Frame(span=win.baseline, at=win.window_start))


def _changed(check: Check, s: Expr, win: Window) -> Expr | None:
    """`s != baseline` at some step: a recorded series whose highest or lowest value is not its median."""
    if not isinstance(s, Selector) or check.against != "baseline":
        return None
    frame = _frame(win)
    ref = baseline_median(s, win)
    high, low = bound(s, True, frame), bound(s, False, frame)
    if high is None or low is None:
        return None
    return BinOp("or", BinOp("!=", high, ref), BinOp("!=", low, ref))
