"""The two rule sets the benchmark compares on the same data.

layered: every group inferwatch ships (recording tiers, then alerts), as `inferwatch generate` writes them.
raw:     the same alert conditions with every recorded series inlined down to the engines' raw metrics,
         the way hand-written alert files query vLLM/SGLang directly. While no alerting rules exist,
         the model-tier records stand in for them (what a dashboard or alert would read).

`floor` is what no rule set reading the same series can spend less than: one 5-minute rate() of every
raw counter and bucket series the rules read, one sample of every raw gauge. `floor_rules` is that floor as
a rule set, so a Prometheus evaluating it every cycle is measured exactly as one evaluating `layered`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from inferwatch.core.config import Config, duration_seconds
from inferwatch.generate.writer import rule_groups
from inferwatch.core.promql import Call, Expr, Matcher, PromQLError, Selector, agg, inline, rate, walk
from inferwatch.core.rules import AlertingRule, RecordingRule, RuleGroup, record_index, rule_file
from inferwatch.core.signals import MODEL


@dataclass(frozen=True)
class RuleSet:
    name: str
    groups: tuple[RuleGroup, ...]
    compared: str  # what the raw side re-implements: "alerts" or "model-tier records"
    skipped: tuple[str, ...] = ()  # rules `promql.inline` cannot rewrite, with the reason

    def write(self, folder: Path) -> list[Path]:
        """One plain rule file per group, as Prometheus, Thanos, Mimir and vmalert load them."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for g in self.groups:
            path = folder / f"{g.name}.rules.yaml"
            path.write_text(rule_file([g]))
            paths.append(path)
        return paths


def layered(cfg: Config, interval: str) -> RuleSet:
    """The shipped groups, `recording.interval` scaled to `interval` and the others in proportion (the GPU
    mapping, every `gpu.info_interval`)."""
    scale = duration_seconds(interval) / duration_seconds(cfg.recording.interval)
    groups = tuple(replace(g, interval=f"{duration_seconds(g.interval) * scale:g}s") for g in rule_groups(cfg))
    return RuleSet("layered", groups, _compared(groups))


def raw(cfg: Config, interval: str) -> RuleSet:
    """Alert conditions (or model-tier records) evaluated straight on raw series."""
    groups = rule_groups(cfg)
    index = record_index(groups)
    compared = _compared(groups)
    out, skipped = [], []
    for g in groups:
        rules = []
        for r in (r for r in g.rules if _is_target(r, compared)):
            try:
                rules.append(replace(r, expr=inline(r.expr, index)))
            except PromQLError as exc:
                skipped.append(f"{getattr(r, 'alert', None) or r.record}: {exc}")
        if rules:
            out.append(RuleGroup(f"{g.name}-raw", interval, tuple(rules), f"{g.file}-raw"))
    return RuleSet("raw", tuple(out), compared, tuple(skipped))


def _compared(groups) -> str:
    has_alerts = any(isinstance(r, AlertingRule) for g in groups for r in g.rules)
    return "alerts" if has_alerts else "model-tier records"


def _is_target(rule, compared: str) -> bool:
    if compared == "alerts":
        return isinstance(rule, AlertingRule)
    return isinstance(rule, RecordingRule) and rule.record.startswith(f"{MODEL}:")



RATED = ("rate", "increase", "irate")
# Every raw series the synthetic cluster has (engines, HTTP, dcgm-exporter): selecting each once is the
# instant floor, a second column beside `floor`.
RAW_SERIES = Selector("", (Matcher("__name__", "vllm:.+|sglang:.+|DCGM_.+|http_requests_total", "=~"),))


@dataclass(frozen=True)
class Floor:
    rated: tuple[Expr, ...]  # rate() over the window of every raw series the rules read through a rate
    sampled: Expr | None     # every other raw series they read, one sample each

    def exprs(self) -> tuple[Expr, ...]:
        return self.rated + ((self.sampled,) if self.sampled is not None else ())


def floor(groups: tuple[RuleGroup, ...], window: str) -> Floor:
    """The raw metric names a rule set reads (any selector that is not a record it writes), split by
    whether some rule rates them (counters, histogram buckets, sums and counts) or samples them. Rates
    are one expression per name: rate() drops the name, so `a_sum` and `a_count` would collide."""
    recorded = {r.record for g in groups for r in g.rules if isinstance(r, RecordingRule)}
    rated: set[str] = set()
    read: set[str] = set()

    def visit(e: Expr) -> None:
        if isinstance(e, Selector) and e.metric not in recorded:
            read.add(e.metric)
        if isinstance(e, Call) and e.func in RATED:
            walk(e, lambda s: rated.add(s.metric) if isinstance(s, Selector) else None)
    for g in groups:
        for r in g.rules:
            walk(r.expr, visit)
    rated &= read
    sampled = "|".join(sorted(read - rated))
    return Floor(tuple(rate(Selector(name), window) for name in sorted(rated)),
                 Selector("", (Matcher("__name__", sampled, "=~"),)) if sampled else None)


def floor_rules(floor: Floor, interval: str) -> RuleSet:
    """The floor's expressions as recording rules of one group, each counted (one series written, as the
    queried floor counts them): what the rule manager spends on them per cycle, in the same process
    conditions (garbage collection, head, evaluation timing) as the layered set, with nothing more."""
    rules = tuple(RecordingRule(f"inferwatch_floor:expr_{i}", agg("count", e)) for i, e in enumerate(floor.exprs()))
    return RuleSet("floor", (RuleGroup("inferwatch-floor", interval, rules, "inferwatch-floor"),), "the floor")
