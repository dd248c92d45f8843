"""The signals a diagnosis reads, each written once against the normalized recorded series.

The graph's checks name these signals; the planner decides per Prometheus whether a signal is read as
recorded or rewritten onto the raw engine series that record it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.config import Config
from ..core.promql import BinOp, Expr, Matcher, Selector, agg, positive
from ..core.schema import Tier, tier_keys
from ..core.signals import GPU, MODEL, POD, info_names, record_names, signal


@dataclass(frozen=True)
class SignalSpec:
    name: str
    tier: Tier
    unit: str
    build: Callable[[Config], Expr]  # over recorded series
    direct: bool = False  # the aggregation only restates the record's own labels: read it as is
    schema: str | None = None  # the schema signal (core/signals.py) a one-record signal reads


def keys(cfg: Config, tier: Tier) -> tuple[str, ...]:
    """The labels that identify an entity of a tier."""
    return tier_keys(cfg.labels, tier)


def _rec(sig: str, level: str, role: str, *matchers: Matcher) -> Callable[[Config], Selector]:
    return lambda cfg: Selector(record_names(signal(sig), level, cfg.recording.rate_window)[role], matchers)


def _by(op: str, tier: Tier, sel: Callable[[Config], Expr]) -> Callable[[Config], Expr]:
    return lambda cfg: agg(op, sel(cfg), keys(cfg, tier))


def _record(name: str, tier: Tier, unit: str, op: str, sig: str, level: str, role: str) -> SignalSpec:
    """A signal that is one recorded series, aggregated to the tier's keys when rebuilt from raw series."""
    return SignalSpec(name, tier, unit, _by(op, tier, _rec(sig, level, role)), direct=True, schema=sig)


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
    _record("prompt_per_request", "pod", "tokens", "max", "prompt_tokens_per_request", POD, "ratio"),
    _record("arrival_rate", "pod", "requests/s", "sum", "requests_arrived", POD, "rate"),
    SignalSpec("present", "pod", "", _present),
    # Per-request means and the completion rate, for the accounting of a root cause (diagnose/accounting.py).
    _record("ttft_mean", "pod", "s", "max", "ttft_seconds", POD, "mean"),
    _record("queue_wait", "pod", "s", "max", "queue_time_seconds", POD, "mean"),
    _record("e2e_mean", "pod", "s", "max", "e2e_latency_seconds", POD, "mean"),
    _record("completion_rate", "pod", "requests/s", "sum", "e2e_latency_seconds", POD, "count"),
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
