"""The numbers that show a root cause accounts for its symptom, on the pods it names.

Little's law for the running batch: running ≈ completion rate x time in batch, where time in batch is a
request's mean end-to-end latency minus its mean queue wait (both from the engines' histograms; without
a queue-time histogram the law is stated for running + waiting and the whole latency). Read now and over
the baseline, it says whether the batch grew because more requests came in or because each stays longer.
TTFT decomposition: mean TTFT ≈ mean queue wait + the rest (prefill and the first token), so a queue
that accounts for a TTFT symptom shows as the larger share. Arrivals (finished + growth of running and
waiting) stand beside them: demand, which a full batch cannot pass on to the completion rate.

One instant query at the diagnosis time, restricted to the root causes' pods: each quantity now (the
rate window's average) and its baseline median (pinned with `@`, as the detectors' baselines are).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core import promql
from ..core.config import Config
from ..core.prometheus import PromClient
from ..core.promql import Expr, Selector, any_of, over_time, set_label

from .planner import Planner
from .queries import PART, baseline_median
from .ranking import RootCause
from .scope import Key, Window, pod_key, pod_matchers

GAUGES = ("running", "waiting")  # averaged over the rate window, like the rates beside them
RATES = ("arrival_rate", "completion_rate")
MEANS = ("ttft_mean", "queue_wait", "e2e_mean")  # per-request means, weighted by completions across pods
WHEN = ("now", "baseline")


@dataclass(frozen=True)
class Values:
    """The quantities of a set of pods at one time (None: not exported by this engine version)."""
    running: float | None
    waiting: float | None
    arrival_rate: float | None
    completion_rate: float | None
    ttft_mean: float | None
    queue_wait: float | None
    e2e_mean: float | None
    in_batch: float | None  # completion rate x time in batch, summed per pod: Little's law's prediction


def query(cfg: Config, planner: Planner, pods: set[Key], win: Window) -> str | None:
    """Every quantity now and at its baseline for `pods`, tagged `<when>:<quantity>`."""
    if not pods:
        return None
    only = pod_matchers(cfg, pods)
    parts: list[Expr] = []
    for name in GAUGES + RATES + MEANS:
        src = planner.source(name)
        if src.expr is None:
            continue
        s = promql.transform(src.expr, lambda n: n.with_matchers(*only) if isinstance(n, Selector) else None)
        now = over_time("avg", s, cfg.recording.rate_window) if name in GAUGES else s
        parts += [set_label(now, PART, f"now:{name}"), set_label(baseline_median(s, win), PART, f"baseline:{name}")]
    return promql.check(any_of(parts)) if parts else None


def fetch(client: PromClient, cfg: Config, planner: Planner, roots: list[RootCause],
          win: Window) -> dict[str, dict[str, Any]]:
    """Root cause id -> its accounting (see `account`); one request whatever the number of causes."""
    pods = {c.cause: {pod_key(cfg, f.labels) for f in c.findings} for c in roots}
    text = query(cfg, planner, set().union(*pods.values()) if pods else set(), win)
    if text is None:
        return {}
    table: dict[tuple[str, str], dict[Key, float]] = {}
    for series in client.query(text, win.at, cfg.diagnose.query_timeout.seconds()):
        when, name = series["metric"].get(PART, ":").split(":", 1)
        table.setdefault((when, name), {})[pod_key(cfg, series["metric"])] = float(series["value"][1])
    out = {}
    for cause, own in pods.items():
        acc = account({w: _values(table, w, own) for w in WHEN}, len(own))
        if acc:
            out[cause] = acc
    return out


def _values(table: dict[tuple[str, str], dict[Key, float]], when: str, pods: set[Key]) -> Values:
    def per_pod(name: str) -> dict[Key, float]:
        return {k: v for k, v in table.get((when, name), {}).items() if k in pods and v == v}  # drop NaN

    sums = {n: (sum(per_pod(n).values()) if per_pod(n) else None) for n in GAUGES + RATES}
    done = per_pod("completion_rate")
    means = {}
    for n in MEANS:
        vals = per_pod(n)
        weight = sum(done.get(k, 0.0) for k in vals)
        means[n] = (sum(v * done.get(k, 0.0) for k, v in vals.items()) / weight) if weight > 0 else None
    e2e, queue = per_pod("e2e_mean"), per_pod("queue_wait")
    in_batch = None
    if done and e2e:
        in_batch = sum(rate * (e2e[k] - queue.get(k, 0.0)) for k, rate in done.items() if k in e2e)
    return Values(**sums, **means, in_batch=in_batch)


def account(v: dict[str, Values], pods: int) -> dict[str, Any]:
    """The JSON of a root cause's accounting: Little's law and the TTFT decomposition, now and at the
    baseline, where the engine exports what they need; {} when it exports neither."""
    out: dict[str, Any] = {}
    now = v["now"]
    if now.in_batch is not None and now.running is not None and now.completion_rate:
        queued = now.queue_wait is not None
        out["littles_law"] = {"counts": "running" if queued else "running + waiting",
                              **{w: _little(v[w], queued) for w in WHEN}}
    if now.ttft_mean is not None and now.queue_wait is not None:
        out["ttft"] = {w: _ttft(v[w]) for w in WHEN}
    if out and now.arrival_rate is not None:
        out["arrival_rate"] = {w: _round(v[w].arrival_rate) for w in WHEN}
    return {"pods": pods, **out} if out else {}


def _little(v: Values, queued: bool) -> dict[str, float | None]:
    observed = v.running if queued or v.running is None else v.running + (v.waiting or 0.0)
    seconds = v.in_batch / v.completion_rate if v.in_batch is not None and v.completion_rate else None
    return {"observed": _round(observed), "completion_rate": _round(v.completion_rate),
            "seconds": _round(seconds), "predicted": _round(v.in_batch)}


def _ttft(v: Values) -> dict[str, float | None]:
    prefill = None if v.ttft_mean is None or v.queue_wait is None else max(0.0, v.ttft_mean - v.queue_wait)
    return {"ttft": _round(v.ttft_mean), "queue_wait": _round(v.queue_wait), "prefill": _round(prefill)}


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")
