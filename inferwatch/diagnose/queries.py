"""One PromQL range query per graph node, for the whole scope, built with `inferwatch.core.promql`.

Signals are written against the normalized recorded series (`llm_model:*`, `llm_pod:*`, `llm_gpu:*`).
When those are not deployed, each signal is rewritten into the raw engine and dcgm-exporter series that
record it (`promql.inline`), and alternatives whose metric names do not exist in this Prometheus are
pruned, so the query reads exactly the vLLM / SGLang version that is running.

A node's query is the union (`or`) of tagged parts, each carrying a label `inferwatch_part`:
  c<i>       the points where check i holds (Prometheus filters; only anomalies come back)
  b<i>, s<i> the baseline / siblings' median check i compared with, once per entity anomalous in the
             last third of the window (for the evidence)
The range covers the window and as much again before it (to see onsets); baselines are subqueries
pinned with `@` to the window's start, which Prometheus evaluates once per query, not once per step.

On recorded pod and GPU series a baseline costs as much as reading the series again for every entity
(8,000 GPUs at 1,000 pods), so those wait for one follow-up query (`followup_query`), restricted by a
pod matcher to the pods the first answers named: the baseline references (b<i>), and the baseline
conditions that only matter where a threshold beside them in the same `All` held (`detectors.gates`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core import promql
from ..core.config import Config
from ..core.promql import (Agg, BinOp, Call, Expr, Matcher, Num, Selector, Subquery, agg, any_of,
                               label_replace, positive)
from ..core.records import gpu_keys, recording_groups
from ..core.rules import record_index
from ..core.signals import GPU, MODEL, POD, info_names, record_names, signal

from .detectors import Check, checks, gates
from .graph import Node, Tier

PART = "inferwatch_part"
NODE = "inferwatch_node"  # tags the parts of a follow-up query that serves several nodes
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


# ---- signals ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignalSpec:
    name: str
    tier: Tier
    unit: str
    build: Callable[[Config], Expr]  # over recorded series
    direct: bool = False  # the aggregation only restates the record's own labels: read it as is


def keys(cfg: Config, tier: Tier) -> tuple[str, ...]:
    """The labels that identify an entity of a tier."""
    lb = cfg.labels
    if tier == "model":
        return lb.model_keys()
    if tier == "pod":
        return lb.pod_keys()
    return tuple(dict.fromkeys(gpu_keys(cfg) + (lb.workload, lb.backend, lb.role)))


def group_keys(cfg: Config, tier: Tier) -> tuple[str, ...]:
    """Siblings: pods of one model, GPUs of one workload (role kept apart)."""
    mk = cfg.labels.model_keys()
    return mk if tier != "gpu" else tuple(k for k in mk if k != cfg.labels.model)


def _rec(sig: str, level: str, role: str, *matchers: Matcher) -> Callable[[Config], Selector]:
    return lambda cfg: Selector(record_names(signal(sig), level, cfg.recording.rate_window)[role], matchers)


def _by(op: str, tier: Tier, sel: Callable[[Config], Expr]) -> Callable[[Config], Expr]:
    return lambda cfg: agg(op, sel(cfg), keys(cfg, tier))


def _record(name: str, tier: Tier, unit: str, op: str, sig: str, level: str, role: str) -> SignalSpec:
    """A signal that is one recorded series, aggregated to the tier's keys when rebuilt from raw series."""
    return SignalSpec(name, tier, unit, _by(op, tier, _rec(sig, level, role)), direct=True)


def _quantile(sig: str) -> Callable[[Config], Expr]:
    def build(cfg: Config) -> Expr:
        q = Matcher("quantile", repr(float(cfg.diagnose.quantile)))
        return agg("max", _rec(sig, MODEL, "quantile", q)(cfg), keys(cfg, "model"))
    return build


def _error_ratio(cfg: Config) -> Expr:
    mk = keys(cfg, "model")
    errors = agg("sum", _rec("request_errors", MODEL, "rate")(cfg), mk)
    return errors / positive(agg("sum", _rec("requests", MODEL, "rate")(cfg), mk))


def _kv_transfer_time(cfg: Config) -> Expr:
    """Mean seconds per prefill/decode KV transfer of a pod."""
    pk = keys(cfg, "pod")
    return (agg("sum", _rec("kv_transfer_time", POD, "rate")(cfg), pk)
            / positive(agg("sum", _rec("kv_transfers", POD, "rate")(cfg), pk)))


def _lora_starved(cfg: Config) -> Expr:
    """Adapters that waiting requests need, on pods whose adapter slots are all in use."""
    pk = keys(cfg, "pod")
    full = BinOp(">=", agg("max", _rec("lora_adapters_running", POD, "value")(cfg), pk),
                 agg("max", _rec("lora_adapters_max", POD, "value")(cfg), pk), on=pk)
    return BinOp("and", agg("max", _rec("lora_adapters_waiting", POD, "value")(cfg), pk), full, on=pk)


def _present(cfg: Config) -> Expr:
    return agg("group", Selector(info_names()["pod_model"]), keys(cfg, "pod"))


SIGNALS: dict[str, SignalSpec] = {s.name: s for s in (
    SignalSpec("ttft", "model", "s", _quantile("ttft_seconds")),
    SignalSpec("itl", "model", "s", _quantile("itl_seconds")),
    SignalSpec("e2e", "model", "s", _quantile("e2e_latency_seconds")),
    SignalSpec("error_ratio", "model", "ratio", _error_ratio),
    _record("generation_rate", "model", "tokens/s", "sum", "generation_tokens", MODEL, "rate"),
    _record("waiting", "pod", "requests", "sum", "requests_waiting", POD, "value"),
    _record("running", "pod", "requests", "sum", "requests_running", POD, "value"),
    _record("kv_usage", "pod", "ratio", "max", "kv_cache_usage", POD, "value"),
    _record("preemptions", "pod", "1/s", "sum", "preemptions", POD, "rate"),
    _record("prefix_hit", "pod", "ratio", "max", "prefix_cache_hit", POD, "ratio"),
    _record("prompt_length", "pod", "tokens", "max", "prompt_length_tokens", POD, "mean"),
    _record("request_rate", "pod", "requests/s", "sum", "requests", POD, "rate"),
    SignalSpec("present", "pod", "", _present),
    _record("spec_accept", "pod", "ratio", "max", "spec_accept_rate", POD, "ratio"),
    SignalSpec("kv_transfer_time", "pod", "s", _kv_transfer_time),
    _record("kv_transfer_failures", "pod", "1/s", "sum", "kv_transfer_failures", POD, "rate"),
    SignalSpec("lora_starved", "pod", "adapters", _lora_starved),
    _record("xid", "gpu", "XID", "max", "xid_last", GPU, "value"),
    _record("remapped_rows", "gpu", "rows", "max", "remapped_rows_uncorrectable", GPU, "value"),
    _record("row_remap_failure", "gpu", "", "max", "row_remap_failure", GPU, "value"),
    _record("ecc_dbe", "gpu", "errors/s", "sum", "ecc_dbe_errors", GPU, "rate"),
    _record("sm_clock", "gpu", "MHz", "max", "sm_clock_mhz", GPU, "value"),
    _record("throttle", "gpu", "s/s", "sum", "throttle", GPU, "rate"),
    _record("fb_used", "gpu", "ratio", "max", "fb_used", GPU, "ratio"),
    _record("engine_active", "gpu", "ratio", "max", "engine_active", GPU, "value"),
)}


# ---- recorded or raw --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A signal's expression for this Prometheus: `mode` recorded | raw | missing, `metrics` it reads."""
    expr: Expr | None
    mode: str
    metrics: tuple[str, ...]


class Planner:
    """Chooses recorded or raw series per signal from the metric names that exist."""

    def __init__(self, cfg: Config, scope: Scope, present: set[str]) -> None:
        self.cfg, self.scope, self.present = cfg, scope, present
        self._records = record_index(recording_groups(cfg))
        self._info = set(info_names().values())
        self._own = {k: v for k, v in self._records.items() if k not in self._info}
        # Multi-node GPU attribution reads the instance inventory as recorded: without the rules
        # deployed it is absent and `prune` drops that branch (raw GPU queries stay short).
        self._raw = {k: v for k, v in self._records.items() if k != info_names()["pod_instance"]}

    def source(self, name: str) -> Source:
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
        raw = prune(promql.inline(expr, self._raw), self.present)
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


def empty(expr: Expr, present: set[str]) -> bool:
    """True when the expression can return nothing here: a selector of an absent metric, or an operation
    one of whose required operands is empty (a LoRA info gauge joined with the pod's models)."""
    if isinstance(expr, Selector):
        return expr.metric not in present
    if isinstance(expr, BinOp):
        if expr.op == "or":
            return empty(expr.lhs, present) and empty(expr.rhs, present)
        if expr.op == "unless":
            return empty(expr.lhs, present)
        sides = [e for e in (expr.lhs, expr.rhs) if not isinstance(e, Num)]
        return any(empty(e, present) for e in sides)
    children = [c for c in promql._children(expr) if not isinstance(c, Num)]
    return bool(children) and any(empty(c, present) for c in children if promql.selectors(c))


def prune(expr: Expr, present: set[str]) -> Expr:
    """Drop `or` alternatives that cannot return data here (see `empty`)."""
    def dead(e: Expr) -> bool:
        return empty(e, present)

    def swap(node: Expr) -> Expr | None:
        if isinstance(node, BinOp) and node.op == "or":
            if dead(node.lhs) and not dead(node.rhs):
                return node.rhs
            if dead(node.rhs) and not dead(node.lhs):
                return node.lhs
        return None
    return promql.transform(expr, swap)


# ---- a node's query ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class At(Expr):
    """`(expr)[range:step] @ t`: a subquery pinned to one instant (step-invariant, evaluated once)."""
    expr: Expr
    range: str
    step: str
    at: float

    def render(self) -> str:
        if isinstance(self.expr, Selector) and not self.expr.range:  # a range selector, not a subquery
            return f"{self.expr.render()}[{self.range}] @ {self.at:.3f}"
        return f"({self.expr.render()})[{self.range}:{self.step}] @ {self.at:.3f}"


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


def _dur(seconds: float) -> str:
    return f"{int(round(seconds))}s"


def _tag(expr: Expr, value: str) -> Expr:
    return label_replace(expr, PART, value, "", "")


def _value(cfg: Config, spec: str | float, section: object) -> float:
    return float(getattr(section, spec)) if isinstance(spec, str) else float(spec)


def check_parts(cfg: Config, node: Node, i: int, check: Check, s: Expr, win: Window,
                baseline: bool = True) -> list[Expr]:
    """The condition of check i (and its reference) as tagged expressions; `baseline=False` leaves the
    baseline reference out (it is fetched later for the anomalous entities only, see `followup_query`)."""
    factor = _value(cfg, check.factor, cfg.diagnose)
    op = check.op
    if check.against == "threshold":
        return [_tag(BinOp(op, s, Num(_value(cfg, check.threshold, cfg.diagnose.thresholds))), f"c{i}")]
    # References come back once per entity, from the last third of the window (cheap: pinned with @).
    recent = lambda e: At(e, _dur(max(win.step, win.window / 3)), _dur(win.step), win.at)  # noqa: E731
    if check.against == "vanished":
        before = Call("max_over_time", (At(s, _dur(win.baseline), _dur(win.baseline_step), win.window_start),))
        return [_tag(BinOp("unless", before, s), f"c{i}")]
    if check.against == "baseline":
        ref = _baseline(s, win)
        cond = BinOp(op, s, _shift(ref, op, factor, check.delta))
        if not baseline:
            return [_tag(cond, f"c{i}")]
        held = Call("max_over_time", (recent(cond),))  # entities anomalous lately
        return [_tag(cond, f"c{i}"), _tag(BinOp("and", ref, held), f"b{i}")]
    group = group_keys(cfg, node_tier_of(check))
    ref = Agg("quantile", s, by=group, param=Num(0.5))
    cond = BinOp(op, s, _shift(ref, op, factor, check.delta), on=group, group_left=())
    return [_tag(cond, f"c{i}"), _tag(Call("avg_over_time", (recent(ref),)), f"s{i}")]


def _baseline(s: Expr, win: Window) -> Expr:
    """The median of the series over the baseline period before the window (evaluated once: pinned)."""
    return Call("quantile_over_time", (Num(0.5), At(s, _dur(win.baseline), _dur(win.baseline_step),
                                                    win.window_start)))


def _shift(ref: Expr, op: str, factor: float, delta: float) -> Expr:
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


def node_query(cfg: Config, planner: Planner, node: Node, win: Window) -> NodeQuery:
    leaves = list(checks(node.detector))
    sources = {c.signal: planner.source(c.signal) for c in leaves}
    later = {i for i, c in enumerate(leaves) if c.against == "baseline" and _restrictable(sources[c.signal])}
    deferred = tuple(sorted(i for i, limits in gates(node.detector).items() if i in later
                            and any(sources[leaves[g].signal].expr is not None for g in limits)))
    parts: list[Expr] = []
    for i, c in enumerate(leaves):
        src = sources[c.signal]
        if src.expr is not None and i not in deferred:
            parts += check_parts(cfg, node, i, c, src.expr, win, baseline=i not in later)
    if not parts:
        return NodeQuery(node, None, sources, win)
    return NodeQuery(node, promql.check(any_of(parts)), sources, win, deferred, tuple(sorted(later)))


def _restrictable(src: Source) -> bool:
    """A recorded pod or GPU series read as is: a pod matcher limits what Prometheus reads."""
    return (src.mode == "recorded" and isinstance(src.expr, Selector)
            and src.expr.metric.split(":", 1)[0] in (POD, GPU))


def followup_query(cfg: Config, todo: list[tuple[NodeQuery, set[Key]]]) -> str | None:
    """One query for the checks the nodes left for later, each restricted to its candidate pods (from
    the first answers) and tagged with its node (label NODE). Its size grows with the anomalous pods,
    not with the cluster, and it adds one request whatever their number."""
    parts: list[Expr] = []
    for q, pods in todo:
        if not pods:
            continue
        only = pod_matchers(cfg, pods)
        leaves = list(checks(q.node.detector))
        for i in sorted(set(q.deferred) | set(q.baselines)):
            s = q.sources[leaves[i].signal].expr.with_matchers(*only)
            own = check_parts(cfg, q.node, i, leaves[i], s, q.window, baseline=False) if i in q.deferred else []
            if i in q.baselines:
                own.append(_tag(_baseline(s, q.window), f"b{i}"))
            parts += [label_replace(p, NODE, q.node.id, "", "") for p in own]
    return promql.check(any_of(parts)) if parts else None


def pod_matchers(cfg: Config, pods: set[Key]) -> tuple[Matcher, ...]:
    """Regex matchers selecting these pods (or a few more: each label is matched on its own)."""
    out = []
    for name in cfg.labels.join_keys():
        values = sorted({dict(key).get(name, "") for key in pods})
        out.append(Matcher(name, "|".join(_regex_literal(v) for v in values), "=~"))
    return tuple(out)


def _regex_literal(value: str) -> str:
    """`value` as an RE2 pattern that matches exactly it (the Matcher quotes the result for PromQL)."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


_REGEX_META = set("\\.+*?()|[]{}^$")


def inventory_query(planner: Planner, win: Window) -> str | None:
    """Which pods served which models during the diagnosis frame (coverage; ties GPUs to models)."""
    src = planner.source("present")
    if src.expr is None:
        return None
    return promql.check(Call("max_over_time", (Subquery(src.expr, _dur(win.at - win.lookback_start),
                                                        _dur(win.baseline_step)),)))
