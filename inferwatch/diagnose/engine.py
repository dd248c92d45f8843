"""The diagnosis API: `run(prometheus_url, scope, at, window, cfg, **connection) -> Report`.

One request lists the metric names that exist (recorded series or raw engine metrics, which vLLM or
SGLang names), one the pods in scope. Then the graph is walked from its symptoms: first the symptom
nodes' range queries, then, for the nodes below an anomalous symptom only (a cause matters only below
a symptom it can explain; the others are `skipped`), one range query per pod node and one instant
screen per GPU node (diagnose/screen.py), and last the screened GPU nodes' queries for the GPUs they
kept beside at most one follow-up for the pods the others named (queries.followup_query). Queries
run concurrently with a per-query timeout and one overall deadline (`diagnose.deadline`, from the start
of `run`; the client ends any request still running then, so `run` returns by it). A failed or late
query marks its node `error` (an errored symptom's causes are still checked) and lands in `errors`;
the rest of the diagnosis still comes back. Only when Prometheus cannot be reached at all does `run`
raise `Unreachable`. Last, one query for the numbers that show each root cause accounts for its
symptom (diagnose/accounting.py).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import networkx as nx

from ..core.config import Config, duration_seconds, is_duration

from . import accounting
from . import charts as chart_data
from . import graph
from ..core.prometheus import Connection, PromClient, PrometheusError, Unreachable
from .evidence import NodeResult, detect
from .planner import Planner
from .queries import GPU_UUID, NODE, PART, NodeQuery, followup_query, inventory_query, node_query
from .scope import Key, Scope, Window, pod_key
from .ranking import walk
from .screen import screen_query
from .report import Report

__all__ = ["run", "Scope", "Report", "Unreachable"]

_DURATION_HINT = "a duration like 15m, 1h or 1h30m (units largest first)"
MIN_WINDOW = 60.0  # seconds: a shorter window holds too few scrapes to compare with anything


def timestamp(at: datetime | float | None) -> float:
    if at is None:
        return time.time()
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("--at: give a time zone (e.g. 2026-01-01T01:50:00Z)")
        return at.timestamp()
    return float(at)


def frame(at: float, window: str, cfg: Config) -> Window:
    if not is_duration(window):
        raise ValueError(f"--window: expected {_DURATION_HINT}, got {window!r}")
    seconds = duration_seconds(window)
    if seconds < MIN_WINDOW:
        raise ValueError(f"--window: {window} is shorter than 1m; a diagnosis needs several scrapes")
    step = max(1.0, round(seconds / cfg.diagnose.points))
    return Window(at=float(int(at)), window=seconds, baseline=cfg.diagnose.baseline.seconds(), step=step)


def run(prometheus_url: str, scope: Scope, at: datetime | float | None, window: str, cfg: Config,
        charts: bool = False, **connection: Any) -> Report:
    """`charts`: one more query, for the series the HTML report draws (diagnose/charts.py)."""
    started = time.monotonic()
    win = frame(timestamp(at), window, cfg)
    d = cfg.diagnose
    deadline = started + d.deadline.seconds()
    client = PromClient(prometheus_url, Connection.from_options(**connection), timeout=d.query_timeout.seconds(),
                        deadline=deadline)
    try:
        try:  # without these two answers there is nothing to diagnose: the server counts as unreachable
            present = client.metric_names(win.lookback_start - cfg.recording.rate_window.seconds(), win.at)
            planner = Planner(cfg, scope, present)
            inventory = _inventory(client, planner, win, cfg)
        except PrometheusError as exc:
            raise exc if isinstance(exc, Unreachable) else Unreachable(str(exc)) from None
        g = graph.build()
        queries = {n.id: node_query(cfg, planner, n, node_frame(win, n)) for n in graph.NODES}
        if not inventory:  # nothing serves in this scope and time: every node is no data
            queries = {n: replace(q, text=None) for n, q in queries.items()}
        models_of_pod = _models_of_pod(cfg, inventory)
        available = {name for q in queries.values() for name, src in q.sources.items() if src.expr is not None}
        nodes: dict[str, NodeResult] = {}
        errors: dict[str, str] = {}
        timings: dict[str, float] = {}

        def judge(ids: set[str]) -> None:
            """Query these nodes (graph order), then read each one's answer."""
            asked = {n: queries[n] for n in queries if n in ids}
            try:
                results, failed, spent = _run_nodes(client, cfg, planner, asked, win, deadline)
            except Unreachable as exc:
                if not nodes:
                    raise
                results, failed, spent = {}, {n: str(exc) for n, q in asked.items() if q.text}, {}
            queries.update(asked)  # a screened GPU node's query is the one its answer came from
            errors.update(failed)
            timings.update(spent)
            for node_id, q in asked.items():
                if node_id in failed:
                    nodes[node_id] = NodeResult(q.node, "error", error=failed[node_id])
                elif q.text is None:
                    nodes[node_id] = NodeResult(q.node, "no_data")
                else:
                    nodes[node_id] = detect(cfg, q.node, q.window, results[node_id], available, models_of_pod)

        # The graph is walked from its symptoms: a cause only matters below a symptom it can explain.
        judge(set(graph.SYMPTOMS))
        below = {n for s in graph.SYMPTOMS if nodes[s].state in ("anomalous", "error") for n in nx.descendants(g, s)}
        if below:
            judge(below)
    except BaseException:
        client.close()
        raise
    for node_id in queries.keys() - nodes.keys():
        nodes[node_id] = NodeResult(queries[node_id].node, "skipped")
    nodes = {n: nodes[n] for n in queries}
    roots = walk(cfg, g, nodes, models_of_pod, win.step)
    symptoms = [(s, nodes[s].findings) for s in graph.SYMPTOMS if nodes[s].state == "anomalous"]
    drawn: list[chart_data.Chart] = []
    accounts: dict[str, dict[str, Any]] = {}
    try:
        if roots:
            accounts = accounting.fetch(client, cfg, planner, roots, win)
    except PrometheusError as exc:  # the causes stand without their numbers
        errors[ACCOUNTING] = str(exc)
    try:
        if charts:
            drawn = chart_data.fetch(client, cfg, queries, chart_data.shown(symptoms, roots), win)
    except PrometheusError as exc:  # the diagnosis stands without its pictures
        errors[CHARTS] = str(exc)
    finally:
        client.close()
    return Report(
        status=_status(nodes), scope=scope.to_dict(), at=win.at, window=window, symptoms=symptoms,
        root_causes=roots, nodes=nodes, sources=_sources(queries),
        errors=[{"node": n, "error": e} for n, e in sorted(errors.items())], queries=client.requests,
        duration_seconds=time.monotonic() - started, cfg=cfg, models_of_pod=models_of_pod,
        timings=timings, charts=drawn, prometheus_url=client.safe_url, accounting=accounts,
        query_texts={n: q.text for n, q in queries.items() if q.text is not None})


GPU_STEPS = 2  # a GPU node reads every GPU_STEPS-th step: a pod has 8 GPUs, and each costs one pod's work


def node_frame(win: Window, node: graph.Node) -> Window:
    """The frame a node's first query reads: GPU nodes at a coarser step (same start, so their points
    are points of the other nodes' grid and the follow-up, read at the base step, has them too)."""
    return replace(win, step=win.step * GPU_STEPS) if node.tier == "gpu" else win


CHARTS = "charts"  # the `errors` entry of a failed chart query
ACCOUNTING = "accounting"  # ... and of a failed accounting query (diagnose/accounting.py)


def _inventory(client: PromClient, planner: Planner, win: Window, cfg: Config) -> list[dict]:
    """The pods (and their models) in scope."""
    text = inventory_query(planner, win)
    return client.query(text, win.at, cfg.diagnose.query_timeout.seconds()) if text else []


def _run_nodes(client: PromClient, cfg: Config, planner: Planner, queries: dict[str, NodeQuery], win: Window,
               deadline: float):
    """Every node's query (a GPU node's screen instead, where it has one: diagnose/screen.py), then in
    one more round the screened GPU nodes' queries for the GPUs their screens kept and one follow-up
    for the checks the other nodes left for their candidate pods. Returns (results by node, errors by
    node, seconds by request name); `queries` ends with the query each node's results came from."""
    screens = {n: text for n, q in queries.items() if (text := screen_query(cfg, q)) is not None}
    texts = {n: q.text for n, q in queries.items() if q.text is not None and n not in screens}
    steps: dict[str, float | None] = {n: q.window.step for n, q in queries.items()}
    for n, text in screens.items():
        texts[n + SCREEN], steps[n + SCREEN] = text, None
    results, errors, timings = _execute(client, texts, win, cfg, deadline, steps)
    second: dict[str, str] = {}
    for n in screens:
        if n + SCREEN in errors:
            errors[n] = errors.pop(n + SCREEN)
            continue
        gpus = {s["metric"][GPU_UUID] for s in results.pop(n + SCREEN) if GPU_UUID in s["metric"]}
        if not gpus:  # no GPU can hold a check anywhere in the frame
            results[n] = []
            continue
        queries[n] = node_query(cfg, planner, queries[n].node, queries[n].window, gpus)
        second[n] = queries[n].text
    todo = [(q, _candidates(cfg, q, results[n])) for n, q in queries.items()
            if n in results and n not in second and (q.deferred or q.baselines)]
    gpus = {q.node.id: _gpus(results[q.node.id]) for q, _ in todo if q.node.tier == "gpu"}
    text = followup_query(cfg, todo, gpus)
    if text is not None:
        second[FOLLOWUP] = text
    if not second:
        return results, errors, timings
    try:
        more, failed, spent = _execute(client, second, win, cfg, deadline, steps)
        timings.update(spent)
    except Unreachable as exc:  # the first answers still stand
        more, failed = {}, {name: str(exc) for name in second}
    for n in set(second) - {FOLLOWUP}:
        if n in failed:
            errors[n] = failed[n]
        else:
            results[n] = more[n]
    if FOLLOWUP not in second:
        return results, errors, timings
    asked = [q.node.id for q, pods in todo if pods]
    if FOLLOWUP in failed:
        for n in asked:
            errors[n] = f"follow-up query: {failed[FOLLOWUP]}"
            results.pop(n, None)
        return results, errors, timings
    for series in more[FOLLOWUP]:
        node = series["metric"].pop(NODE)
        results[node].append(series)
    return results, errors, timings


SCREEN = " screen"  # a GPU node's screen is the request "<node> screen"
FOLLOWUP = "follow-up"


def _candidates(cfg: Config, q: NodeQuery, result: list[dict]) -> set[Key]:
    """Pods with any point where a check of the node held: only they can be (or explain) an anomaly.
    A GPU node finds GPUs only among those a GPU check held for (evidence.detect), so only their pods
    count."""
    hits = [s["metric"] for s in result if s["metric"].get(PART, "").startswith("c")]
    if q.node.tier == "gpu":
        hits = [m for m in hits if GPU_UUID in m]
    return {pod_key(cfg, m) for m in hits}


def _gpus(result: list[dict]) -> set[str]:
    """The GPUs (dcgm-exporter UUIDs) with any point where a check of the node held."""
    return {s["metric"][GPU_UUID] for s in result
            if s["metric"].get(PART, "").startswith("c") and GPU_UUID in s["metric"]}


def _execute(client: PromClient, texts: dict[str, str], win: Window, cfg: Config, deadline: float,
             steps: dict[str, float | None] | None = None):
    """Run range queries concurrently until `deadline` (monotonic), each at its step in `steps` (default
    the window's; None: an instant query at the window's end); returns (results by name, errors by
    name, seconds by name as the client saw them).
    Daemon threads, so a stuck request never keeps the process alive past the deadline (a
    ThreadPoolExecutor's threads are joined at exit)."""
    d = cfg.diagnose
    timeout = d.query_timeout.seconds()
    todo: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    for item in texts.items():
        todo.put(item)
    timings: dict[str, float] = {}
    answers: dict[str, list | PrometheusError] = {}

    def work() -> None:
        while time.monotonic() < deadline:
            try:
                name, text = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.monotonic()
            try:
                step = (steps or {}).get(name, win.step)
                answers[name] = (client.query(text, win.at, timeout) if step is None
                                 else client.query_range(text, win.start, win.at, step, timeout))
            except PrometheusError as exc:
                answers[name] = exc
            timings[name] = time.monotonic() - t0

    workers = [threading.Thread(target=work, name="diagnose", daemon=True)
               for _ in range(min(d.concurrency, len(texts)))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    answers = dict(answers)
    results: dict[str, list] = {}
    errors: dict[str, str] = {}
    for name in texts:
        answer = answers.get(name)
        if answer is None:
            errors[name] = f"not finished within the {d.deadline} deadline"
        elif isinstance(answer, PrometheusError):
            errors[name] = str(answer)
        else:
            results[name] = answer
    unreachable = [a for a in answers.values() if isinstance(a, Unreachable)]
    if texts and len(unreachable) == len(texts):
        raise unreachable[0]
    return results, errors, dict(timings)


def _models_of_pod(cfg: Config, inventory: list[dict]) -> dict[Key, set[str]]:
    out: dict[Key, set[str]] = {}
    for series in inventory:
        labels = series["metric"]
        out.setdefault(pod_key(cfg, labels), set()).add(labels.get(cfg.labels.model, ""))
    return out


def _status(nodes: dict[str, NodeResult]) -> str:
    """degraded when a symptom holds; otherwise partial when any node could not be checked (a blind spot
    is never a clean bill of health); otherwise healthy, or unknown without data."""
    states = [nodes[s].state for s in graph.SYMPTOMS]
    if "anomalous" in states:
        return "degraded"
    if any(n.state == "error" for n in nodes.values()):
        return "partial"
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
