"""One PromQL range query per graph node, for the whole scope, built as a tree (`inferwatch.core.promql`).

A node's query is the union (`or`) of tagged parts, each carrying a label `inferwatch_part`:
  c<i>       the points where check i holds (Prometheus filters; only anomalies come back)
  b<i>, s<i> the baseline / siblings' median check i compared with, once per entity anomalous in the
             last third of the window (for the evidence)
The range covers the window and as much again before it (to see onsets); baselines are subqueries
pinned with `@` to the window's start, which Prometheus evaluates once per query, not once per step.

On pod and GPU series (recorded, or rebuilt from raw series) a baseline costs as much as reading the
series again for every entity (8,000 GPUs at 1,000 pods), so those wait for one follow-up query
(`followup_query`), restricted by a pod matcher to the pods the first answers named (and on GPU fields,
by a UUID matcher to their GPUs, which reaches the dcgm-exporter selectors): the baseline
references (b<i>), and the baseline conditions that only matter where a threshold beside them in the
same `All` held (`detectors.gates`).

A threshold is applied as close to the raw series as it stays exact (`promql.sift`): a GPU field is
compared per GPU before it is joined to its pod, so the join and the aggregations above it see the few
GPUs beyond the threshold instead of all of them. A threshold check whose `All` holds a threshold of
another tier is limited to the entities and steps where that one holds too, inside the query
(`promql.narrow`: idle GPUs only on pods with requests waiting).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import promql
from ..core.config import Config
from ..core.promql import (Agg, At, BinOp, Call, Expr, Matcher, Num, Selector, any_of,
                           set_label)
from ..core.schema import Tier, sibling_keys
from ..core.signals import GPU, POD

from .detectors import Check, checks, gates, partners
from .graph import Node
from .planner import Planner, Source
from .scope import Key, Window, pod_matchers
from .signals import SIGNALS, keys

PART = "inferwatch_part"
GPU_UUID = "UUID"  # dcgm-exporter's GPU id, one of the labels a GPU field is joined to its pod on
NODE = "inferwatch_node"  # tags the parts of a follow-up query that serves several nodes


def _dur(seconds: float) -> str:
    return f"{int(round(seconds))}s"


def _tag(expr: Expr, value: str) -> Expr:
    return set_label(expr, PART, value)


def setting(cfg: Config, spec: str | float, section: object) -> float:
    return float(getattr(section, spec)) if isinstance(spec, str) else float(spec)


def check_parts(cfg: Config, node: Node, i: int, check: Check, s: Expr, win: Window,
                baseline: bool = True, peers: Expr | None = None) -> list[Expr]:
    """The condition of check i (and its reference) as tagged expressions; `baseline=False` leaves the
    baseline reference out (it is fetched later for the anomalous entities only, see `followup_query`).
    `peers`: the series a siblings' median is taken over, when `s` is restricted to a few entities."""
    factor = setting(cfg, check.factor, cfg.diagnose)
    op = check.op
    if check.against == "threshold":
        return [_tag(threshold(cfg, check, s), f"c{i}")]
    # References come back once per entity, from the last third of the window (cheap: pinned with @).
    recent = lambda e: At(e, _dur(max(win.step, win.window / 3)), _dur(win.step), win.at)  # noqa: E731
    if check.against == "vanished":
        before = ever(s, win.baseline, win.baseline_step, win.window_start)
        if isinstance(s, Agg) and s.op == "group" and s.by is not None and isinstance(s.expr, Selector) \
                and not s.expr.range:  # the selector's series matched on the group's labels: no regrouping per step
            return [_tag(BinOp("unless", before, s.expr, on=s.by), f"c{i}")]
        return [_tag(BinOp("unless", before, s), f"c{i}")]
    if check.against == "baseline":
        ref = baseline_median(s, win)
        cond = BinOp(op, s, shift(ref, op, factor, check.delta))
        if not baseline:
            return [_tag(cond, f"c{i}")]
        if node_tier_of(check) == "model":  # a few series: every model's reference costs less than
            return [_tag(cond, f"c{i}"), _tag(ref, f"b{i}")]  # reading the series again to pick some
        held = Call("max_over_time", (recent(cond),))  # entities anomalous lately
        return [_tag(cond, f"c{i}"), _tag(BinOp("and", ref, held), f"b{i}")]
    group = sibling_keys(cfg.labels, node_tier_of(check))
    ref = Agg("quantile", s if peers is None else peers, by=group, param=Num(0.5))
    cond = BinOp(op, s, shift(ref, op, factor, check.delta), on=group, group_left=())
    return [_tag(cond, f"c{i}"), _tag(Call("avg_over_time", (recent(ref),)), f"s{i}")]


def threshold(cfg: Config, check: Check, s: Expr) -> Expr:
    """The points of `s` beyond the check's threshold, filtered before the joins and aggregations that
    do not change them (`promql.sift`: a GPU field is compared per GPU before it is joined to its pod)."""
    return promql.sift(s, check.op, setting(cfg, check.threshold, cfg.diagnose.thresholds))


def baseline_median(s: Expr, win: Window) -> Expr:
    """The median of the series over the baseline period before the window (evaluated once: pinned)."""
    return Call("quantile_over_time", (Num(0.5), At(s, _dur(win.baseline), _dur(win.baseline_step),
                                                    win.window_start)))


def shift(ref: Expr, op: str, factor: float, delta: float) -> Expr:
    if op == ">":
        out = ref * factor if factor != 1 else ref
        return out + delta if delta else out
    if op == "<":
        out = ref / factor if factor != 1 else ref
        return out - delta if delta else out
    return ref


def node_tier_of(check: Check) -> Tier:
    return SIGNALS[check.signal].tier


@dataclass(frozen=True)
class NodeQuery:
    """A node's first query, and the checks left to `followup_query` (indices into its detector):
    `deferred` conditions run only where a threshold beside them held; `baselines` are the baseline
    references, fetched for the anomalous entities only. Both need recorded pod or GPU series, which
    a label matcher restricts to those entities before Prometheus reads them."""
    node: Node
    text: str | None  # None: no signal of the node exists here
    sources: dict[str, Source]
    window: Window
    deferred: tuple[int, ...] = ()
    baselines: tuple[int, ...] = ()


def node_query(cfg: Config, planner: Planner, node: Node, win: Window, gpus: set[str] | None = None) -> NodeQuery:
    """`gpus`: read only these GPUs (UUIDs a screen kept, diagnose/screen.py), with every check and
    baseline in this one query (they are few); their siblings' median still reads every GPU."""
    leaves = list(checks(node.detector))
    sources = {c.signal: planner.source(c.signal) for c in leaves}
    read = {name: src.expr for name, src in sources.items()}
    if gpus is not None:
        only = (Matcher.one_of(GPU_UUID, gpus),)
        read = {name: e if e is None or SIGNALS[name].tier != "gpu" else restrict(e, only) for name, e in read.items()}
    later = {i for i, c in enumerate(leaves) if gpus is None
             and c.against == "baseline" and _restrictable(sources[c.signal], SIGNALS[c.signal].tier)}
    deferred = tuple(sorted(i for i, limits in gates(node.detector).items() if i in later
                            and any(sources[leaves[g].signal].expr is not None for g in limits)))
    parts: list[Expr] = []
    for i, c in enumerate(leaves):
        s = read[c.signal]
        if s is not None and i not in deferred:
            parts += check_parts(cfg, node, i, c, _narrowed(cfg, node, leaves, sources, i, s), win,
                                 baseline=i not in later, peers=sources[c.signal].expr)
    if not parts:
        return NodeQuery(node, None, sources, win)
    return NodeQuery(node, promql.check(any_of(parts)), sources, win, deferred, tuple(sorted(later)))


def _narrowed(cfg: Config, node: Node, leaves: list[Check], sources: dict[str, Source], i: int, s: Expr) -> Expr:
    """Signal `s` of threshold check i limited to the steps and entities where the threshold checks of
    another tier in the same `All` hold (`detectors.partners`): a GPU idling counts only where its pod
    has requests waiting, so Prometheus returns those GPUs, not every idle one. The partners are linked
    the way evidence.linked links them, on the identity labels both tiers have."""
    mine = SIGNALS[leaves[i].signal].tier
    if mine != node.tier:
        return s
    for j in partners(node.detector).get(i, ()):
        other = sources[leaves[j].signal].expr
        tier = SIGNALS[leaves[j].signal].tier
        if other is None or tier == mine:
            continue
        shared = tuple(k for k in keys(cfg, tier) if k in keys(cfg, mine))
        s = promql.narrow(s, threshold(cfg, leaves[j], other), shared)
    return s


def _restrictable(src: Source, tier: str) -> bool:
    """A pod or GPU signal, recorded (read as is) or rebuilt from raw series: a pod matcher limits what
    Prometheus reads (pushed down to the raw selectors, `promql.push`)."""
    if src.mode == "raw":
        return tier in ("pod", "gpu")
    return (src.mode == "recorded" and isinstance(src.expr, Selector)
            and src.expr.metric.split(":", 1)[0] in (POD, GPU))


def restrict(expr: Expr, matchers: tuple[promql.Matcher, ...]) -> Expr:
    """`expr` limited by label matchers: on its selector, or pushed down into a rebuilt expression."""
    if isinstance(expr, Selector):
        return expr.with_matchers(*matchers)
    for m in matchers:
        expr = promql.push(expr, m)
    return expr


def followup_query(cfg: Config, todo: list[tuple[NodeQuery, set[Key]]],
                   gpus: dict[str, set[str]] | None = None) -> str | None:
    """One query for the checks the nodes left for later, each restricted to its candidate pods (from
    the first answers) and tagged with its node (label NODE). Its size grows with the anomalous pods,
    not with the cluster, and it adds one request whatever their number. `gpus`: per GPU node, the
    UUIDs of its candidate GPUs: the pod labels of a GPU field come from the join with its pod, so
    only a GPU's own id limits the dcgm-exporter series Prometheus reads (`promql.push`)."""
    parts: list[Expr] = []
    for q, pods in todo:
        if not pods:
            continue
        only = pod_matchers(cfg, pods)
        if gpus is not None and q.node.id in gpus:
            only += (Matcher.one_of(GPU_UUID, gpus[q.node.id]),)
        leaves = list(checks(q.node.detector))
        for i in sorted(set(q.deferred) | set(q.baselines)):
            s = restrict(q.sources[leaves[i].signal].expr, only)
            own = check_parts(cfg, q.node, i, leaves[i], s, q.window, baseline=False) if i in q.deferred else []
            if i in q.baselines:
                own.append(_tag(baseline_median(s, q.window), f"b{i}"))
            parts += [set_label(p, NODE, q.node.id) for p in own]
    return promql.check(any_of(parts)) if parts else None


def inventory_query(planner: Planner, win: Window) -> str | None:
    """Which pods served which models during the diagnosis frame (coverage; ties GPUs to models)."""
    src = planner.source("present")
    if src.expr is None:
        return None
    return promql.check(ever(src.expr, win.at - win.lookback_start, win.baseline_step, win.at))


def ever(s: Expr, seconds: float, step: float, at: float) -> Expr:
    """The series `s` had at some point of the `seconds` before `at`. The group of one selector reads the
    selector's samples once (`last_over_time`) instead of grouping it again at every subquery step."""
    if isinstance(s, Agg) and s.op == "group" and isinstance(s.expr, Selector) and not s.expr.range:
        return Agg("group", Call("last_over_time", (At(s.expr, _dur(seconds), "", at),)), s.by, s.without)
    return Call("max_over_time", (At(s, _dur(seconds), _dur(step), at),))
