"""Per-model SLOs as multi-window, multi-burn-rate alerts, written once on the model-tier records.

SLIs are ratios of bad to all requests, recorded per window (`llm_model:slo_errors:ratio_rate1h`,
`llm_model:slo_ttft_slow:ratio_rate6h`, ...). Windows longer than the recording rate window are derived
from the 5m model records with `sum_over_time` (numerator and denominator summed separately, so the ratio
is traffic-weighted): one series per model instead of every raw bucket of every pod, and counter resets
are already absorbed by `rate()` in the 5m records. The windows of a tier that fits within the recording
rate window (page-outage: 5m and 2m) rate the raw series themselves, summed straight to the model and only
for what an SLI reads (requests, errors, the threshold bucket and the count): reading the 5m records would
add three rule-group hops of lag to a tier meant to page within minutes, and one model series per input
keeps the added cost small. A latency SLI counts requests above a histogram bucket
boundary, so a threshold must be a boundary of every enabled backend (snapped or rejected otherwise).

Objectives come from `slo:` with per-model overrides; each override is a `Variant` with its own scope.
The global variant excludes the overridden models, so no model is ever recorded or alerted twice.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from ..core.catalog import load_catalog, parent
from ..core.records import pod_signal_exprs
from ..core.labels import BURN_TIER, BURN_TIERS, SLO, contract
from ..core.config import BACKENDS, SLO_KINDS, BurnWindow, Config, ConfigError, ModelSLO, Objective, duration_seconds
from ..core.promql import (BinOp, Expr, Matcher, Num, Selector, agg, any_of, label_replace, aggregate_once, number,
                           over_time, positive, regex_escape, transform)
from ..core.rules import AlertingRule, RecordingRule, RuleGroup
from ..core.signals import MODEL, record_names, signal

ALERT = "LLMModelErrorBudgetBurn"
LATENCY_SIGNAL = {"ttft": "ttft_seconds", "itl": "itl_seconds", "e2e_latency": "e2e_latency_seconds"}
KNOWN_REASONS = ("engine_error", "abort", "http_5xx", "pd_bootstrap", "pd_transfer")
WHAT = {"availability": "requests that fail", "ttft": "requests whose time to first token exceeds",
        "itl": "tokens whose inter-token latency exceeds", "e2e_latency": "requests whose end-to-end latency exceeds"}
TITLE = {"availability": "availability", "ttft": "time-to-first-token", "itl": "inter-token latency",
         "e2e_latency": "end-to-end latency"}


# ---- objectives and their scopes ------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One objective for a set of models: an override (scope = its matchers) or the global one
    (empty scope, minus every overridden scope in `excluded`)."""
    slo: str
    objective: Objective
    scope: tuple[Matcher, ...] = ()
    excluded: tuple[tuple[Matcher, ...], ...] = ()
    asked_threshold: float = 0.0  # before snapping to a bucket boundary


def scope_of(cfg: Config, m: ModelSLO) -> tuple[Matcher, ...]:
    lb = cfg.labels
    pairs = ((lb.namespace, m.namespace), (lb.workload, m.workload), (lb.model, m.model))
    return tuple(Matcher(name, value) for name, value in pairs if value)


def variant_labels(v: Variant, all_variants: list[Variant]) -> dict[str, str]:
    """With overrides, each variant's rules carry `slo_variant` (default, or the override's matchers), so
    rules of one name differ in their labels (promtool's duplicate-rules lint); without, none."""
    if len(all_variants) == 1:
        return {}
    return {"slo_variant": ",".join(f"{m.name}={m.value}" for m in v.scope) or "default"}


def variants(cfg: Config, kind: str) -> list[Variant]:
    """The global objective of an SLO, then one variant per model override that touches it."""
    base: Objective = getattr(cfg.slo, kind)
    overrides = [m for m in cfg.slo.models if _touches(getattr(m, kind))]
    out = [_snapped(cfg, Variant(kind, base, (), tuple(scope_of(cfg, m) for m in overrides)))]
    for m in overrides:
        o = getattr(m, kind)
        merged = Objective(base.enabled if o.enabled is None else o.enabled,
                           base.objective_percent if o.objective_percent is None else o.objective_percent,
                           base.threshold_seconds if o.threshold_seconds is None else o.threshold_seconds)
        out.append(_snapped(cfg, Variant(kind, merged, scope_of(cfg, m))))
    return out


def _touches(o) -> bool:
    return any(v is not None for v in (o.enabled, o.objective_percent, o.threshold_seconds))


def _snapped(cfg: Config, v: Variant) -> Variant:
    asked = v.objective.threshold_seconds
    if v.slo not in LATENCY_SIGNAL or not v.objective.enabled:
        return replace(v, asked_threshold=asked)
    common = common_boundaries(cfg, v.slo)
    if cfg.slo.threshold_policy == "snap" and common and not _is_boundary(asked, common):
        below = [b for b in common if b <= asked]
        snapped = max(below) if below else min(common)
        return replace(v, objective=replace(v.objective, threshold_seconds=snapped), asked_threshold=asked)
    return replace(v, asked_threshold=asked)


def boundaries(cfg: Config, kind: str) -> dict[str, tuple[float, ...]]:
    """Histogram bucket boundaries of a latency SLI, per enabled engine (from the catalogs)."""
    engines = dict.fromkeys(parent(b) for b in cfg.backends)
    return {e: load_catalog(e).buckets.get(LATENCY_SIGNAL[kind], ()) for e in engines}


def common_boundaries(cfg: Config, kind: str) -> list[float]:
    return list(_common_boundaries(cfg.backends, kind))


@functools.lru_cache(maxsize=64)
def _common_boundaries(backends: tuple[str, ...], kind: str) -> tuple[float, ...]:
    """Cached: every override asks again, and validation must stay fast for thousands of them."""
    per = list(boundaries(Config(backends=backends), kind).values())
    if not per:
        return ()
    return tuple(sorted(b for b in per[0] if all(_is_boundary(b, other) for other in per[1:])))


def _is_boundary(x: float, bounds) -> bool:
    return any(abs(x - b) <= 1e-9 * max(1.0, abs(b)) for b in bounds)


def burn_factor(cfg: Config, w: BurnWindow) -> float:
    """Sloth's formula: the burn rate that spends `budget_percent` of the budget within `long`."""
    return w.budget_percent / 100 * duration_seconds(cfg.slo.period) / duration_seconds(w.long)


def threshold(cfg: Config, w: BurnWindow, objective: Objective) -> float:
    """The bad-ratio above which a window burns too fast: factor x error budget."""
    return float(f"{burn_factor(cfg, w) * (100 - objective.objective_percent) / 100:.10g}")


def severity(w: BurnWindow) -> str:
    return "critical" if w.burn_tier.startswith("page") else "warning"


# ---- config checks (called from Config.validate) --------------------------------------------

def check_config(cfg: Config) -> None:
    s = cfg.slo
    rate_s = duration_seconds(cfg.recording.rate_window)
    if s.threshold_policy not in ("reject", "snap"):
        raise ConfigError(f"slo.threshold_policy: {s.threshold_policy!r}; use reject or snap")
    if not 0 < s.min_request_rate:
        raise ConfigError(f"slo.min_request_rate: {s.min_request_rate} must be above 0")
    seen: set[str] = set()
    for i, w in enumerate(s.windows):
        where = f"slo.windows[{i}]"
        if w.burn_tier not in BURN_TIERS or w.burn_tier in seen:
            raise ConfigError(f"{where}.burn_tier: {w.burn_tier!r} must be one of {', '.join(BURN_TIERS)}, "
                              "each at most once")
        seen.add(w.burn_tier)
        if not 0 < w.budget_percent <= 100:
            raise ConfigError(f"{where}.budget_percent: {w.budget_percent} is not in (0, 100]")
        if not duration_seconds(w.short) < duration_seconds(w.long) <= duration_seconds(s.period):
            raise ConfigError(f"{where}: need short ({w.short}) < long ({w.long}) <= slo.period ({s.period})")
        floor = max(2 * duration_seconds(cfg.scrape.interval), 60)
        for name, window in (("short", w.short), ("long", w.long)):
            if duration_seconds(window) < min(rate_s, floor):  # longer windows read the 5m records
                raise ConfigError(f"{where}.{name}: {window} is below twice the scrape interval "
                                  f"({cfg.scrape.interval}) and 1m: a rate over it sees too few samples")
    for backend, reasons in s.error_reasons.items():
        if backend not in BACKENDS:
            raise ConfigError(f"slo.error_reasons.{backend}: unknown backend; known: {', '.join(BACKENDS)}")
        for r in reasons:
            if r not in KNOWN_REASONS:
                raise ConfigError(f"slo.error_reasons.{backend}: unknown reason {r!r}; known: "
                                  f"{', '.join(KNOWN_REASONS)}")
    for kind in SLO_KINDS:
        _check_objective(cfg, f"slo.{kind}", kind, getattr(s, kind))
    first: dict[tuple[Matcher, ...], int] = {}  # one pass over the overrides: linear in their number
    for i, m in enumerate(s.models):
        if not m.model:
            raise ConfigError(f"slo.models[{i}].model: name the model (its {cfg.labels.model} label)")
        j = first.setdefault(scope_of(cfg, m), i)
        if j != i:
            raise ConfigError(f"slo.models[{j}]: model {m.model!r} is listed twice with the same scope")
    for kind in SLO_KINDS:
        merged = {v.scope: v.objective for v in variants(cfg, kind)[1:]}
        for i, m in enumerate(s.models):
            if _touches(getattr(m, kind)):
                _check_objective(cfg, f"slo.models[{i}].{kind}", kind, merged[scope_of(cfg, m)])


def _check_objective(cfg: Config, where: str, kind: str, o: Objective) -> None:
    if not o.enabled:
        return
    if kind in LATENCY_SIGNAL and LATENCY_SIGNAL[kind] not in cfg.recording.model_histograms:
        raise ConfigError(f"{where}: its SLI reads {LATENCY_SIGNAL[kind]} over hours; add it to "
                          "recording.model_histograms")
    if not 0 < o.objective_percent < 100:
        raise ConfigError(f"{where}.objective_percent: {number(o.objective_percent)} must be between 0 and 100 "
                          "(exclusive: 100% leaves no error budget)")
    if kind not in LATENCY_SIGNAL:
        return
    per = boundaries(cfg, kind)
    common = common_boundaries(cfg, kind)
    valid = "; ".join(f"{e}: {', '.join(number(b) for b in bs)}" for e, bs in per.items())
    if not common:
        raise ConfigError(f"{where}: the enabled backends share no {kind} bucket boundary ({valid})")
    if cfg.slo.threshold_policy == "reject" and not _is_boundary(o.threshold_seconds, common):
        raise ConfigError(f"{where}.threshold_seconds: {number(o.threshold_seconds)} is not a bucket boundary "
                          f"of every enabled backend's {kind} histogram, so the share of slower requests cannot be "
                          f"counted. Common boundaries: {', '.join(number(b) for b in common)}. Per backend: "
                          f"{valid}. (Or set slo.threshold_policy: snap.)")


# ---- SLI recording rules --------------------------------------------------------------------

def windows(cfg: Config) -> list[str]:
    """Every short and long window, shortest first."""
    ws = {w for row in cfg.slo.windows for w in (row.short, row.long)}
    return sorted(ws, key=duration_seconds)


def sli_name(kind: str, window: str) -> str:
    bad = "errors" if kind == "availability" else f"{kind}_slow"
    return f"{MODEL}:slo_{bad}:ratio_rate{window}"


def is_short(cfg: Config, window: str) -> bool:
    """A window of a tier that fits within the recording rate window (page-outage's 5m and 2m): its SLI
    inputs rate the raw series in the SLO group itself, so the alert is at most two rule groups behind
    the scrape instead of four (engine -> pod -> model -> SLO)."""
    rw = duration_seconds(cfg.recording.rate_window)
    return any(window in (w.short, w.long) and duration_seconds(w.long) <= rw for w in cfg.slo.windows)


def requests_name(cfg: Config, window: str) -> str:
    if window == cfg.recording.rate_window and not is_short(cfg, window):
        return record_names(signal("requests"), MODEL, window)["rate"]
    return f"{MODEL}:slo_requests:rate{window}"


def errors_name(cfg: Config, window: str | None = None) -> str:
    return f"{MODEL}:slo_errors:rate{window or cfg.recording.rate_window}"


def short_name(cfg: Config, sig: str, window: str, role: str) -> str:
    """A short-window SLI input: the model record's name with the short window."""
    return record_names(signal(sig), MODEL, window)[role].replace(f"{MODEL}:", f"{MODEL}:slo_", 1)


def _windowed(cfg: Config, sel: Selector, window: str) -> Expr:
    """A 5m record as-is, or summed over a longer window."""
    return sel if window == cfg.recording.rate_window else over_time("sum", sel, window)


def short_rate(cfg: Config, sig_name: str, window: str, role: str, les: tuple[float, ...] = ()) -> Expr:
    """A model's rate over a short window straight from the raw series of every enabled backend (a -pd
    backend only where its catalog changes the signal), buckets limited to the SLO thresholds `les`."""
    lb, sig = cfg.labels, signal(sig_name)
    backends = sorted({parent(b) for b in cfg.backends})
    backends += sorted(b for b in cfg.backends if b != parent(b)
                       and load_catalog(b).of(sig_name) != load_catalog(parent(b)).of(sig_name))
    le = Matcher("le", "|".join(le_pattern(b) for b in les), "=~")
    only_le = lambda e: e.with_matchers(le) if isinstance(e, Selector) and e.metric.endswith("_bucket") else None  # noqa: E731
    parts = []
    for b in backends:
        cat = load_catalog(b)
        if not cat.of(sig_name):
            continue
        expr = pod_signal_exprs(cfg, cat, sig, window)[role]
        if les:
            expr = transform(expr, only_le)
        parts.append(label_replace(expr, lb.backend, b, lb.backend, ""))
    keep = sig.keep + (("le",) if role == "bucket" else ())
    return aggregate_once(agg("sum", any_of(parts), lb.model_keys() + keep))


def _errors_rule(cfg: Config, window: str | None = None) -> RecordingRule:
    """Failed requests/s of a model: per backend, the reasons that count as failures. The max over
    reasons (not the sum) because an engine error usually also surfaces as an HTTP 5xx."""
    lb, mk = cfg.labels, cfg.labels.model_keys()
    rw = window or cfg.recording.rate_window
    if is_short(cfg, rw):
        errors, requests_rec = short_name(cfg, "request_errors", rw, "rate"), requests_name(cfg, rw)
    else:
        errors, requests_rec = (record_names(signal("request_errors"), MODEL, rw)["rate"],
                                record_names(signal("requests"), MODEL, rw)["rate"])
    by_reasons: dict[tuple[str, ...], list[str]] = {}
    for b in cfg.backends:
        reasons = cfg.slo.error_reasons.get(b, ())
        if reasons:
            by_reasons.setdefault(tuple(sorted(reasons)), []).append(b)
    parts: list[Expr] = [agg("max", Selector(errors, (Matcher(lb.backend, _alternatives(bs), "=~"),
                                                      Matcher("reason", _alternatives(rs), "=~"))), mk)
                         for rs, bs in sorted(by_reasons.items(), key=lambda kv: kv[1])]
    parts.append(Selector(requests_rec) * 0)  # a model without any error series has 0 errors, not "no data"
    return RecordingRule(errors_name(cfg, rw), any_of(parts))


def _alternatives(values) -> str:
    return "|".join(regex_escape(v) for v in values)


def le_pattern(boundary: float) -> str:
    """`le` as Prometheus 2 stores Python clients' text (1.0) and Prometheus 3 normalises it (1)."""
    forms = sorted({number(boundary), repr(float(boundary))})
    return "|".join(regex_escape(f) for f in forms)


def _latency_sli(cfg: Config, v: Variant, window: str) -> Expr:
    mk, rw = cfg.labels.model_keys(), cfg.recording.rate_window
    sig = LATENCY_SIGNAL[v.slo]
    short = is_short(cfg, window)
    names = ({role: short_name(cfg, sig, window, role) for role in ("bucket", "count")} if short
             else record_names(signal(sig), MODEL, rw))
    at = (lambda sel: sel) if short else (lambda sel: _windowed(cfg, sel, window))  # noqa: E731
    le = Matcher("le", le_pattern(v.objective.threshold_seconds), "=~")
    good = agg("sum", at(Selector(names["bucket"], v.scope + (le,))), mk)
    total = at(Selector(names["count"], v.scope))
    expr: Expr = Num(1) - good / positive(total)
    for other in v.excluded:
        present = Selector(names["count"], other)
        expr = expr.unless(present if short or window == rw else over_time("count", present, window), on=mk)
    return expr


def short_inputs(cfg: Config, window: str) -> list[RecordingRule]:
    """What the SLIs of one short window read, rated from the raw series (see the module docstring)."""
    rules = [RecordingRule(requests_name(cfg, window), short_rate(cfg, "requests", window, "rate"))]
    if any(v.objective.enabled for v in variants(cfg, "availability")):
        rules.append(RecordingRule(short_name(cfg, "request_errors", window, "rate"),
                                   short_rate(cfg, "request_errors", window, "rate")))
        rules.append(_errors_rule(cfg, window))
    for kind, sig in LATENCY_SIGNAL.items():
        les = tuple(sorted({v.objective.threshold_seconds for v in variants(cfg, kind) if v.objective.enabled}))
        if les:
            rules.append(RecordingRule(short_name(cfg, sig, window, "bucket"),
                                       short_rate(cfg, sig, window, "bucket", les)))
            rules.append(RecordingRule(short_name(cfg, sig, window, "count"),
                                       short_rate(cfg, sig, window, "count")))
    return rules


def sli_group(cfg: Config) -> RuleGroup:
    """SLI ratios per window for every enabled SLO, plus the traffic each long window saw. Short-window
    inputs come first in the group, so an evaluation reads the inputs it has just recorded."""
    rw = cfg.recording.rate_window
    requests = Selector(record_names(signal("requests"), MODEL, rw)["rate"])
    rules: list[RecordingRule] = [r for w in windows(cfg) if is_short(cfg, w) for r in short_inputs(cfg, w)]
    if not is_short(cfg, rw):
        rules.append(_errors_rule(cfg))
    longs = {row.long for row in cfg.slo.windows}
    for w in windows(cfg):
        if w in longs and w != rw and not is_short(cfg, w):
            rules.append(RecordingRule(requests_name(cfg, w), over_time("avg", requests, w)))
    if any(v.objective.enabled for v in variants(cfg, "availability")):
        for w in windows(cfg):
            if is_short(cfg, w):
                ratio = Selector(errors_name(cfg, w)) / positive(Selector(requests_name(cfg, w)))
            else:
                ratio = _windowed(cfg, Selector(errors_name(cfg)), w) / positive(_windowed(cfg, requests, w))
            rules.append(RecordingRule(sli_name("availability", w), ratio))
    for kind in LATENCY_SIGNAL:
        vs = variants(cfg, kind)
        for v in vs:
            if v.objective.enabled:
                for w in windows(cfg):
                    rules.append(RecordingRule(sli_name(kind, w), _latency_sli(cfg, v, w), variant_labels(v, vs)))
    return RuleGroup("inferwatch-slo", cfg.recording.interval, tuple(rules), "inferwatch-slo")


# ---- burn-rate alerts -----------------------------------------------------------------------

def burn_rules(cfg: Config, runbook_url: str, identity: str) -> list[AlertingRule]:
    """One alert per SLO variant and burn tier: both windows over the threshold, enough traffic."""
    mk = cfg.labels.model_keys()
    rules = []
    for kind in SLO_KINDS:
        vs = variants(cfg, kind)
        for v in vs:
            if not v.objective.enabled:
                continue
            for w in cfg.slo.windows:
                thr = threshold(cfg, w, v.objective)
                long = Selector(sli_name(kind, w.long), v.scope)
                short = Selector(sli_name(kind, w.short), v.scope)
                traffic = Selector(requests_name(cfg, w.long), v.scope) >= cfg.slo.min_request_rate
                expr: Expr = BinOp("and", BinOp("and", long > thr, short > thr), traffic, on=mk)
                for other in v.excluded:
                    expr = expr.unless(Selector(sli_name(kind, w.long), other), on=mk)
                labels = {**contract(severity(w), "model"), SLO: kind, BURN_TIER: w.burn_tier, "long": w.long,
                          "short": w.short, **variant_labels(v, vs)}
                rules.append(AlertingRule(ALERT, expr, w.for_duration, labels,
                                          {"summary": f"A model is spending its {TITLE[kind]} error budget "
                                                      "too fast.",
                                           "description": describe(cfg, v, w, identity),
                                           "runbook_url": runbook_url}))
    return rules


def describe(cfg: Config, v: Variant, w: BurnWindow, identity: str) -> str:
    """Static numbers from config (stable within a notification group) plus the model's labels."""
    o = v.objective
    what = WHAT[v.slo]
    if v.slo in LATENCY_SIGNAL:
        what += f" {number(o.threshold_seconds)}s"
        if v.asked_threshold != o.threshold_seconds:
            what += f" (configured {number(v.asked_threshold)}s, snapped to a bucket boundary)"
    factor = float(f"{burn_factor(cfg, w):.4g}")
    lasts = duration_seconds(cfg.slo.period) / factor
    return (f"{identity}: the share of {what} is above {number(round(threshold(cfg, w, o) * 100, 6))}% over both "
            f"the last {w.long} and {w.short}, {number(factor)}x the rate its {number(o.objective_percent)}% "
            f"objective allows over {cfg.slo.period}. At this pace the whole error budget is gone in "
            f"{_human(lasts)}.")


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{number(round(seconds / size, 1))}{unit}"
    return f"{number(round(seconds))}s"

