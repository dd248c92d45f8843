"""The series behind the HTML report's charts: one more range query, only for the findings it shows.

The node queries return only the points where a check held (queries.py), which says *when* but cannot be
drawn. For each symptom and root cause of the result, this reads the node's main signal (its first check on
its own tier) over the baseline and the window, for the anomalous entities and their siblings (the pods of
the same model, the GPUs of the same workload), in ONE request tagged per signal. Recorded pod and GPU
series are restricted by label matchers to the siblings' groups, so the answer grows with the findings,
not with the cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from ..core import promql
from ..core.config import Config
from ..core.prometheus import PromClient
from ..core.promql import Expr, Matcher, any_of, set_label
from ..core.schema import sibling_keys

from .detectors import Check, checks
from .evidence import Finding
from .graph import BY_ID, Node
from .queries import NodeQuery, restrict
from .scope import Key, Window
from .signals import SIGNALS, keys

CHART = "inferwatch_chart"
MAX_SIBLINGS = 10  # grey lines per chart beside the anomalous ones
MAX_POINTS = 240  # per series: a chart is ~600 pixels wide


@dataclass
class Line:
    """One entity's series: `faulty` when it is one of the findings."""
    entity: dict[str, str]
    points: list[tuple[float, float]]
    faulty: bool


@dataclass
class Chart:
    """A node's main signal around the incident, with the line it was compared with and the onset."""
    node: str
    kind: str  # symptom | cause
    signal: str
    unit: str
    expr: str  # the signal's PromQL in this Prometheus (scoped), for the Prometheus and Grafana links
    start: float  # start of the baseline
    window_start: float
    at: float
    onset: float | None
    reference: float | None = None
    reference_label: str = ""  # "threshold" | "baseline (median)"
    lines: list[Line] = field(default_factory=list)


def main_check(node: Node) -> Check:
    """The node's first check on its own tier: the signal its chart shows."""
    return next(c for c in checks(node.detector) if SIGNALS[c.signal].tier == node.tier)


def shown(symptoms: list[tuple[str, list[Finding]]], roots: list) -> list[tuple[str, str, list[Finding]]]:
    """(node, kind, findings) for every chart of the report, symptoms first."""
    return [(s, "symptom", fs) for s, fs in symptoms] + [(r.cause, "cause", r.findings) for r in roots]


def entity(cfg: Config, tier: str, labels: dict[str, str]) -> Key:
    return tuple((k, labels.get(k, "")) for k in keys(cfg, tier))


def _group_matchers(cfg: Config, tier: str, findings: list[Finding]) -> tuple[Matcher, ...]:
    """Regex matchers selecting the siblings' groups of these findings (each label matched on its own)."""
    out = []
    for name in sibling_keys(cfg.labels, tier):
        out.append(Matcher.one_of(name, (f.labels.get(name, "") for f in findings)))
    return tuple(out)


def chart_query(cfg: Config, queries: dict[str, NodeQuery], wanted: list[tuple[str, str, list[Finding]]]
                ) -> tuple[str | None, dict[str, str]]:
    """The one PromQL for every chart, and each signal's own expression (for links)."""
    findings_by_signal: dict[str, list[Finding]] = {}
    exprs: dict[str, Expr] = {}
    for node_id, _, findings in wanted:
        node = BY_ID[node_id]
        sig = main_check(node).signal
        src = queries[node_id].sources.get(sig)
        if src is None or src.expr is None:
            continue
        exprs[sig] = src.expr
        findings_by_signal.setdefault(sig, []).extend(findings)
    parts, texts = [], {}
    for sig, expr in exprs.items():
        tier = SIGNALS[sig].tier
        if tier != "model":
            expr = restrict(expr, _group_matchers(cfg, tier, findings_by_signal[sig]))
        texts[sig] = promql.check(expr)
        parts.append(set_label(expr, CHART, sig))
    return (promql.check(any_of(parts)) if parts else None), texts


def fetch(client: PromClient, cfg: Config, queries: dict[str, NodeQuery], wanted: list[tuple[str, str, list[Finding]]], win: Window) -> list[Chart]:
    """The charts of `wanted`; raises PrometheusError like any query (the caller decides what it costs)."""
    text, texts = chart_query(cfg, queries, wanted)
    if text is None:
        return []
    step = max(win.step, (win.at - win.lookback_start) / MAX_POINTS)
    result = client.query_range(text, win.lookback_start, win.at, step, cfg.diagnose.query_timeout.seconds())
    by_signal: dict[str, dict[Key, list[tuple[float, float]]]] = {}
    for series in result:
        labels = dict(series["metric"])
        sig = labels.pop(CHART, "")
        if sig not in SIGNALS:
            continue
        key = entity(cfg, SIGNALS[sig].tier, labels)
        pts = [(float(t), float(v)) for t, v in series.get("values", [])]
        by_signal.setdefault(sig, {}).setdefault(key, []).extend(pts)
    charts = []
    for node_id, kind, findings in wanted:
        node = BY_ID[node_id]
        check = main_check(node)
        if check.signal not in texts:
            continue
        charts.append(_chart(cfg, node, kind, check, findings, by_signal.get(check.signal, {}), texts[check.signal],
                             win))
    return charts


def _chart(cfg: Config, node: Node, kind: str, check: Check, findings: list[Finding],
           series: dict[Key, list[tuple[float, float]]], expr: str, win: Window) -> Chart:
    tier = node.tier
    faulty = {entity(cfg, tier, f.labels) for f in findings}
    groups = {tuple(kv for kv in k if kv[0] in sibling_keys(cfg.labels, tier)) for k in faulty}
    siblings = sorted(k for k in series if k not in faulty
                      and (tier == "model" or tuple(kv for kv in k if kv[0] in sibling_keys(cfg.labels, tier)) in groups))
    lines = [Line(dict(k), sorted(series[k]), True) for k in sorted(faulty) if k in series]
    lines += [Line(dict(k), sorted(series[k]), False) for k in siblings[:MAX_SIBLINGS]]
    chart = Chart(node.id, kind, check.signal, SIGNALS[check.signal].unit, expr, win.lookback_start,
                  win.window_start, win.at, min((f.onset for f in findings), default=None), lines=lines)
    threshold = next((c for c in checks(node.detector) if c.signal == check.signal and c.against == "threshold"),
                     None)
    if threshold is not None:
        spec = threshold.threshold
        chart.reference = float(getattr(cfg.diagnose.thresholds, spec)) if isinstance(spec, str) else float(spec)
        chart.reference_label = "threshold"
    elif any(c.signal == check.signal and c.against == "baseline" for c in checks(node.detector)):
        before = [v for line in lines if line.faulty for t, v in line.points if t < win.window_start]
        if before:
            chart.reference, chart.reference_label = median(before), "baseline (median)"
    return chart
