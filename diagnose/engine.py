"""The diagnosis API: `run(prometheus_url, scope, at, window, cfg, **connection) -> Report`.

One request lists the metric names that exist (recorded series or raw engine metrics, which vLLM or
SGLang names), then one range query per graph node and one inventory query run concurrently with a
per-query timeout and an overall deadline. A failed or late query marks its node `error` and lands in
`errors`; the rest of the diagnosis still comes back. Only when Prometheus cannot be reached at all does
`run` raise `Unreachable`.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime
from typing import Any

from generators.config import Config, duration_seconds

from . import graph
from .client import Connection, PromClient, PrometheusError, Unreachable
from .evidence import Key, NodeResult, detect, pod_key
from .queries import Planner, Scope, Window, inventory_query, node_query
from .ranking import walk
from .report import Report

__all__ = ["run", "Scope", "Report", "Unreachable"]

_DURATION_HINT = "a duration like 15m, 1h or 90s"


def timestamp(at: datetime | float | None) -> float:
    if at is None:
        return time.time()
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("--at: give a time zone (e.g. 2026-01-01T01:50:00Z)")
        return at.timestamp()
    return float(at)


def frame(at: float, window: str, cfg: Config) -> Window:
    seconds = duration_seconds(window) if window else 0
    if seconds <= 0 or not _is_duration(window):
        raise ValueError(f"--window: expected {_DURATION_HINT}, got {window!r}")
    step = max(1.0, round(seconds / cfg.diagnose.points))
    return Window(at=float(int(at)), window=seconds, baseline=cfg.diagnose.baseline.seconds(), step=step)


def _is_duration(text: str) -> bool:
    return re.fullmatch(r"(\d+(ms|s|m|h|d|w))+", text) is not None


def run(prometheus_url: str, scope: Scope, at: datetime | float | None, window: str, cfg: Config,
        **connection: Any) -> Report:
    started = time.monotonic()
    win = frame(timestamp(at), window, cfg)
    d = cfg.diagnose
    client = PromClient(prometheus_url, Connection.from_options(**connection), timeout=d.query_timeout.seconds())
    try:
        try:  # without these two answers there is nothing to diagnose: the server counts as unreachable
            present = client.metric_names(win.lookback_start - cfg.recording.rate_window.seconds(), win.at)
            planner = Planner(cfg, scope, present)
            inventory = _inventory(client, planner, win, cfg)
        except PrometheusError as exc:
            raise exc if isinstance(exc, Unreachable) else Unreachable(str(exc)) from None
        g = graph.build()
        queries = {n.id: node_query(cfg, planner, n, win) for n in graph.NODES}
        if not inventory:  # nothing serves in this scope and time: every node is no data
            queries = {n: replace(q, text=None) for n, q in queries.items()}
        results, errors = _execute(client, queries, cfg)
    finally:
        client.close()
    models_of_pod = _models_of_pod(cfg, inventory)
    available = {name for q in queries.values() for name, src in q.sources.items() if src.expr is not None}
    nodes: dict[str, NodeResult] = {}
    for node_id, q in queries.items():
        if node_id in errors:
            nodes[node_id] = NodeResult(q.node, "error", error=errors[node_id])
        elif q.text is None:
            nodes[node_id] = NodeResult(q.node, "no_data")
        else:
            nodes[node_id] = detect(cfg, q.node, q.window, results[node_id], available, models_of_pod)
    roots = walk(cfg, g, nodes, models_of_pod, max(q.window.step for q in queries.values()))
    symptoms = [(s, nodes[s].findings) for s in graph.SYMPTOMS if nodes[s].state == "anomalous"]
    return Report(
        status=_status(nodes), scope=scope.to_dict(), at=win.at, window=window, symptoms=symptoms,
        root_causes=roots, nodes=nodes, sources=_sources(queries),
        errors=[{"node": n, "error": e} for n, e in sorted(errors.items())], queries=client.requests,
        duration_seconds=time.monotonic() - started, cfg=cfg, models_of_pod=models_of_pod)


def _inventory(client: PromClient, planner: Planner, win: Window, cfg: Config) -> list[dict]:
    """The pods (and their models) in scope."""
    text = inventory_query(planner, win)
    return client.query(text, win.at, cfg.diagnose.query_timeout.seconds()) if text else []


def _execute(client: PromClient, queries, cfg: Config):
    """Run every node query concurrently; returns (results by node, errors by node)."""
    d = cfg.diagnose
    timeout = d.query_timeout.seconds()
    pool = ThreadPoolExecutor(max_workers=d.concurrency, thread_name_prefix="diagnose")
    futures: dict[str, Future] = {}
    for node_id, q in queries.items():
        if q.text is not None:
            w = q.window
            futures[node_id] = pool.submit(client.query_range, q.text, w.start, w.at, w.step, timeout)
    done, _ = wait(futures.values(), timeout=d.deadline.seconds())
    pool.shutdown(wait=False, cancel_futures=True)
    results: dict[str, list] = {}
    errors: dict[str, str] = {}
    for name, fut in futures.items():
        if fut not in done:
            errors[name] = f"not finished within the {d.deadline} deadline"
            continue
        try:
            results[name] = fut.result()
        except PrometheusError as exc:
            errors[name] = str(exc)
    unreachable = [f.exception() for f in done if isinstance(f.exception(), Unreachable)]
    if futures and len(unreachable) == len(futures):
        raise unreachable[0]
    return results, errors


def _models_of_pod(cfg: Config, inventory: list[dict]) -> dict[Key, set[str]]:
    out: dict[Key, set[str]] = {}
    for series in inventory:
        labels = series["metric"]
        out.setdefault(pod_key(cfg, labels), set()).add(labels.get(cfg.labels.model, ""))
    return out


def _status(nodes: dict[str, NodeResult]) -> str:
    states = [nodes[s].state for s in graph.SYMPTOMS]
    if "anomalous" in states:
        return "degraded"
    if "normal" in states:
        return "healthy"
    return "unknown"


def _sources(queries) -> dict[str, dict[str, Any]]:
    """Per signal: recorded | raw | missing, and the metric names it read (which engine version spoke)."""
    out: dict[str, dict[str, Any]] = {}
    for q in queries.values():
        for name, src in q.sources.items():
            out[name] = {"mode": src.mode, "metrics": list(src.metrics)}
    return dict(sorted(out.items()))
