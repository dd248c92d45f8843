"""Run a rule set in a real Prometheus on backfilled blocks and read what Prometheus reports about it.

Numbers come from Prometheus' own /metrics: `prometheus_rule_group_last_duration_seconds` and
`prometheus_rule_group_last_evaluation_samples` per group (sampled over several evaluations, median
kept), `process_resident_memory_bytes` and `prometheus_tsdb_head_series`.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from inferwatch.sandbox.localprom import LocalPrometheus
from inferwatch.core.promql import Expr, agg, check

from . import profile

_LINE = re.compile(r'^(\w+)(?:\{rule_group="([^"]*)"\})? (\S+)$')
GROUP_METRICS = ("prometheus_rule_group_last_duration_seconds", "prometheus_rule_group_last_evaluation_samples",
                 "prometheus_rule_group_last_evaluation_timestamp_seconds",
                 "prometheus_rule_group_iterations_missed_total", "prometheus_rule_group_interval_seconds")
SCRAPE_TIMEOUT = 30.0  # a 5,000-pod process answers in well under a second unless something is wrong
QUERY_TIMEOUT = 600.0  # every raw series of 5,000 pods at once takes 19 CPU-seconds, longer on a busy machine
PROCESS_METRICS = ("process_resident_memory_bytes", "prometheus_tsdb_head_series",
                   "prometheus_rule_evaluation_failures_total", "process_cpu_seconds_total")


@dataclass(frozen=True)
class GroupCost:
    name: str
    seconds: float  # median evaluation duration
    samples: int    # series written (recording) or alerts produced per evaluation
    finished: bool = True  # False: no evaluation finished before the timeout; seconds is a lower bound


@dataclass(frozen=True)
class RunCost:
    groups: tuple[GroupCost, ...]
    rss_bytes: int
    head_series: int
    failures: int
    cpu_per_cycle: float  # Prometheus CPU seconds per evaluation interval while measuring
    slowest: tuple[tuple[str, float], ...]  # (rule, seconds) of the last evaluation, slowest first
    window_fill: float  # share of the 5m rate window covered by data at the last measured evaluation
    # CPU seconds of each floor (name -> seconds): "rate" = rulesets.floor, "instant" = every raw series once
    floor_cpu: dict[str, float] | None = None
    # group evaluations skipped while measuring (one still running when the next was due): cpu_per_cycle
    # divides by the intervals elapsed, so it reads low when this is not 0
    missed: int = 0
    # CPU seconds profiled after measuring, with the rules running, and each category's share (bench/profile.py)
    profile: tuple[float, list[tuple[str, float]]] | None = None

    @property
    def seconds(self) -> float:
        return sum(g.seconds for g in self.groups)

    @property
    def finished(self) -> bool:
        return all(g.finished for g in self.groups)

    @property
    def samples(self) -> int:
        return sum(g.samples for g in self.groups)


def scrape(url: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-group metrics keyed by group name, and process-wide metrics (summed over label sets)."""
    groups: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    try:
        body = requests.get(url + "/metrics", timeout=SCRAPE_TIMEOUT).text
    except requests.RequestException as exc:
        raise RuntimeError(f"Prometheus at {url} did not answer /metrics within {SCRAPE_TIMEOUT:.0f}s "
                           f"(overloaded, or short of memory?): {exc.__class__.__name__}") from exc
    for line in body.splitlines():
        m = _LINE.match(line)
        if not m:
            if line.startswith("prometheus_rule_evaluation_failures_total{"):
                totals[PROCESS_METRICS[2]] = totals.get(PROCESS_METRICS[2], 0.0) + float(line.rsplit(" ", 1)[1])
            continue
        name, group, value = m.groups()
        if group is not None and name in GROUP_METRICS:
            groups.setdefault(group.split(";", 1)[1], {})[name] = float(value)
        elif name in PROCESS_METRICS:
            totals[name] = float(value)
    return groups, totals


def run(blocks: Path | None, rule_files: list[Path], workdir: Path, interval: float, not_before: float,
        last_sample: float, window: float = 300.0, warmup: int = 3, cycles: int = 4,
        timeout: float = 600.0, floors: dict[str, tuple[Expr, ...]] | None = None,
        load: Callable[[str], object] | None = None, env: dict[str, str] | None = None,
        profile_seconds: int = 0) -> RunCost:
    """Evaluate `rule_files` on `blocks` (moved into `workdir`), or on what `load(url)` writes into the
    running Prometheus (remote write: the head, as a live Prometheus holds recent data); measure `cycles`
    evaluations of every group (of a slower group, those that fall in as many intervals) that start at
    least `warmup` intervals after `not_before` or the load, whichever is later (when recording chains
    are filled).
    A group still in its first evaluation at `timeout` is reported with the time it has taken so far.
    `floors` name the expressions whose CPU (summed) a rule set reading the same raw series cannot go
    below; each is measured on the same TSDB once the rules are stopped. `profile_seconds` > 0: a CPU
    profile of that long is taken after measuring, the rules still running."""
    workdir.mkdir(parents=True, exist_ok=True)
    if blocks is not None:
        blocks.rename(workdir / "data")
    seen: dict[str, dict[float, tuple[float, int]]] = {}
    floor_cpu = None
    receiver = ["--web.enable-remote-write-receiver"] if load else []
    with LocalPrometheus(None, rule_files=rule_files, evaluation_interval=f"{int(interval)}s",
                         workdir=workdir, extra_args=receiver, env=env) as prom:
        if load:
            load(prom.url)
        first = max(not_before, time.time()) + warmup * interval
        deadline = time.monotonic() + timeout
        before = None  # totals and wall time when measuring starts
        while True:
            groups, totals = scrape(prom.url)
            if before is None and time.time() >= first:
                before = (totals, time.time(), _missed(groups))
            for name, m in groups.items():
                ts = m.get(GROUP_METRICS[2], 0.0)
                seen.setdefault(name, {})
                if ts >= first and m[GROUP_METRICS[0]] > 0:
                    seen[name][ts] = (m[GROUP_METRICS[0]], int(m[GROUP_METRICS[1]]))
            if groups and all(len(seen[n]) >= _needed(cycles, interval, m) for n, m in groups.items()):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(min(1.0, interval / 4))
        stopped = time.time()
        slowest = slowest_rules(prom.url)
        cpu_profile = profile.breakdown(profile.fetch(prom.url, profile_seconds)) if profile_seconds else None
        if floors and load:  # the head would take minutes to replay in a new process: unload the rules
            prom.load_rules([])
            time.sleep(max((g.get(GROUP_METRICS[0], 0.0) for g in groups.values()), default=0.0) + 1)  # last ones end
            floor_cpu = _floors(prom, floors, min(last_sample, stopped))
    if floors and not load:  # on the same TSDB without rules, so no evaluation competes with it
        with LocalPrometheus(None, workdir=workdir, env=env) as idle:
            floor_cpu = _floors(idle, floors, last_sample)
    costs = tuple(_cost(name, evals, stopped - first) for name, evals in sorted(seen.items()))
    last_eval = max((max(v) for v in seen.values() if v), default=stopped)
    fill = max(0.0, min(1.0, 1 - (last_eval - last_sample) / window))
    start_totals, start_time, start_missed = before or (totals, stopped, _missed(groups))
    delta = {k: totals.get(k, 0.0) - start_totals.get(k, 0.0) for k in PROCESS_METRICS}
    cycles_run = max(1.0, (stopped - start_time) / interval)
    return RunCost(costs, int(totals.get(PROCESS_METRICS[0], 0)), int(totals.get(PROCESS_METRICS[1], 0)),
                   int(delta[PROCESS_METRICS[2]]), delta[PROCESS_METRICS[3]] / cycles_run, slowest, fill,
                   floor_cpu, _missed(groups) - start_missed, cpu_profile)


FLOOR_ROUNDS = 3  # a 5,000-pod floor measured once moved 12.9 -> 26.5 s between runs on a busy host


def _floors(prom: LocalPrometheus, floors: dict[str, tuple[Expr, ...]], at: float) -> dict[str, float]:
    """Each floor's CPU: the sum of its expressions' least of FLOOR_ROUNDS rounds (`least_cpu`)."""
    names = [name for name, exprs in floors.items() for _ in exprs]
    spent = dict.fromkeys(floors, 0.0)
    for name, cpu in zip(names, least_cpu(prom, [e for exprs in floors.values() for e in exprs], at, FLOOR_ROUNDS)):
        spent[name] += cpu
    return spent


def _needed(cycles: int, interval: float, group: dict[str, float]) -> int:
    """Evaluations of a group that span `cycles` intervals, at least one: a slower group (the GPU mapping,
    every 4 cycles) is not waited for 4 times, by when the raw series would have left the lookback."""
    every = group.get(GROUP_METRICS[4]) or interval
    return max(1, math.ceil(cycles * interval / every - 1e-9))


def _missed(groups: dict[str, dict[str, float]]) -> int:
    return int(sum(m.get(GROUP_METRICS[3], 0.0) for m in groups.values()))


def query_cpu(prom: LocalPrometheus, expr: Expr, at: float, repeat: int = 3) -> float:
    """Prometheus CPU seconds of evaluating `count(expr)` at `at`: the mean over `repeat` runs (beats the
    10 ms CPU clock). Counting keeps the answer one series, so encoding it costs nothing."""
    before = scrape(prom.url)[1][PROCESS_METRICS[3]]
    for _ in range(repeat):
        prom.client().query(check(agg("count", expr)), at, timeout=QUERY_TIMEOUT)
    return (scrape(prom.url)[1][PROCESS_METRICS[3]] - before) / repeat


def least_cpu(prom: LocalPrometheus, exprs: list[Expr], at: float, rounds: int, repeat: int = 3) -> list[float]:
    """Each expression's least `query_cpu` over `rounds` rounds, every round timing every expression once:
    on a shared machine contention only adds CPU, and a host that slows down for a while raises one round
    of every expression, not every round of some."""
    best = [float("inf")] * len(exprs)
    for _ in range(rounds):
        for i, e in enumerate(exprs):
            best[i] = min(best[i], query_cpu(prom, e, at, repeat))
    return best


def slowest_rules(url: str, top: int = 8) -> tuple[tuple[str, float], ...]:
    """The rules that took longest in their last evaluation (/api/v1/rules `evaluationTime`)."""
    groups = requests.get(url + "/api/v1/rules", timeout=30).json()["data"]["groups"]
    rules = [(f"{g['name']}: {r.get('name', '')}{_labels(r)}", float(r.get("evaluationTime", 0.0)))
             for g in groups for r in g["rules"]]
    return tuple(sorted(rules, key=lambda x: -x[1])[:top])


def _labels(rule: dict) -> str:
    labels = {k: v for k, v in (rule.get("labels") or {}).items() if k == "quantile"}
    return "".join(f'{{{k}="{v}"}}' for k, v in labels.items())


def _cost(name: str, evals: dict[float, tuple[float, int]], running_for: float) -> GroupCost:
    if not evals:
        return GroupCost(name, max(0.0, running_for), 0, finished=False)
    return GroupCost(name, statistics.median(d for d, _ in evals.values()),
                     int(statistics.median(s for _, s in evals.values())))
