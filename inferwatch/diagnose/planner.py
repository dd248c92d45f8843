"""Recorded or raw: how each signal is read from the Prometheus at hand.

Signals are written against the normalized recorded series (`llm_model:*`, `llm_pod:*`, `llm_gpu:*`).
When those are not deployed (or a record is computed at query time, core/records.py), each signal is
rewritten into the raw engine and dcgm-exporter series that record them (`promql.inline` over
`schema.records`), and alternatives whose metric names do not exist in this Prometheus are pruned, so
the query reads exactly the vLLM / SGLang version that is running.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..core import promql
from ..core.config import Config
from ..core.promql import Agg, BinOp, Expr, Num, Selector
from ..core.records import GPU_BY_ID, gpu_floors, high_name, id_name
from ..core.schema import records
from ..core.signals import info_names, signal

from .scope import Scope
from .signals import SIGNALS


@dataclass(frozen=True)
class Source:
    """A signal's expression for this Prometheus: `mode` recorded | raw | missing, `metrics` it reads;
    for a GPU fault signal whose rules are deployed, `high`: the record of the GPUs past `floor`
    (core/records.py gpu_high), which a screen for `> threshold` (threshold >= floor) reads instead."""
    expr: Expr | None
    mode: str
    metrics: tuple[str, ...]
    high: Selector | None = None
    floor: float = 0.0


class Planner:
    """Chooses recorded or raw series per signal from the metric names that exist."""

    def __init__(self, cfg: Config, scope: Scope, present: set[str]) -> None:
        self.cfg, self.scope, self.present = cfg, scope, present
        self._records = records(cfg)
        self._info = set(info_names().values())
        self._own = {k: v for k, v in self._records.items() if k not in self._info}
        # Multi-node GPU attribution reads the instance inventory as recorded: without the rules
        # deployed it is absent and `prune` drops that branch (raw GPU queries stay short).
        self._raw = {k: v for k, v in self._records.items() if k != info_names()["pod_instance"]}
        self._sources: dict[str, Source] = {}  # by signal: every node reading it asks again
        # The fault records' group writes dense GPU records too: one of them (or a fault record) here
        # means the fault records are deployed, and no series of one means no GPU past its floor.
        self._floors = gpu_floors(cfg)
        group = [id_name(signal(n)) for n in GPU_BY_ID] + [high_name(n) for n in self._floors]
        self._faults_deployed = any(name in present for name in group)

    def source(self, name: str) -> Source:
        if name not in self._sources:
            src = self._source(name)
            schema = SIGNALS[name].schema
            if src.expr is not None and self._faults_deployed and schema in self._floors:
                src = replace(src, high=Selector(high_name(schema)), floor=self._floors[schema])
            self._sources[name] = src
        return self._sources[name]

    def _source(self, name: str) -> Source:
        spec = SIGNALS[name]
        expr = promql.transform(spec.build(self.cfg), self._scoped)
        recorded = [s.metric for s in promql.selectors(expr)]
        if all(m in self.present for m in recorded):
            if spec.direct and isinstance(expr, Agg) and isinstance(expr.expr, Selector):
                expr = expr.expr  # no per-step regrouping; baselines read raw samples, not subqueries
            return Source(expr, "recorded", tuple(dict.fromkeys(recorded)))
        # The signal's own raw metrics, not those of the pod inventory GPU series are joined with.
        own = [s.metric for s in promql.selectors(promql.inline(expr, self._own))
               if s.metric not in self._info]
        # Only what this Prometheus lacks is rebuilt: a GPU field computed at query time still joins the
        # recorded owner inventory when the rules are deployed.
        absent = {k: v for k, v in self._raw.items() if k not in self.present}
        raw = promql.aggregate_once(prune(promql.inline(expr, absent), self.present))
        metrics = tuple(dict.fromkeys(m for m in (own or [s.metric for s in promql.selectors(raw)])
                                      if m in self.present))
        if not metrics or empty(raw, self.present):
            return Source(None, "missing", ())
        return Source(raw, "raw", metrics)

    def _scoped(self, node: Expr) -> Expr | None:
        if isinstance(node, Selector) and node.metric in self._records:
            level = node.metric.split(":", 1)[0]
            return node.with_matchers(*self.scope.matchers(self.cfg, level))
        return None


def empty(expr: Expr, present: set[str], memo: dict[int, bool] | None = None) -> bool:
    """True when the expression can return nothing here: a selector of an absent metric, or an operation
    one of whose required operands is empty (a LoRA info gauge joined with the pod's models). `memo`:
    answers by node identity, for callers that ask about every subtree of one tree."""
    memo = {} if memo is None else memo
    if id(expr) in memo:
        return memo[id(expr)]
    if isinstance(expr, Selector):
        out = expr.metric not in present
    elif isinstance(expr, BinOp):
        if expr.op == "or":
            out = empty(expr.lhs, present, memo) and empty(expr.rhs, present, memo)
        elif expr.op == "unless":
            out = empty(expr.lhs, present, memo)
        else:
            out = any(empty(e, present, memo) for e in (expr.lhs, expr.rhs) if not isinstance(e, Num))
    else:
        children = [c for c in promql.children(expr) if not isinstance(c, Num)]
        out = bool(children) and any(empty(c, present, memo) for c in children if promql.selectors(c))
    memo[id(expr)] = out
    return out


def prune(expr: Expr, present: set[str]) -> Expr:
    """Drop `or` alternatives that cannot return data here (see `empty`)."""
    memo: dict[int, bool] = {}
    keep = [expr]  # the rewritten nodes stay alive, so no id in `memo` is reused by another node

    def dead(e: Expr) -> bool:
        keep.append(e)
        return empty(e, present, memo)

    def swap(node: Expr) -> Expr | None:
        if isinstance(node, BinOp) and node.op == "or":
            if dead(node.lhs) and not dead(node.rhs):
                return node.rhs
            if dead(node.rhs) and not dead(node.lhs):
                return node.lhs
        return None
    return promql.transform(expr, swap)
