"""`inferwatch demo`: the whole job on a bundled incident, with no cluster and no network.

Synthesizes an incident scenario, backfills it into a throwaway Prometheus on 127.0.0.1 with the
generated rules loaded, lists the alerts that fire at the incident time, runs `diagnose` on the same
Prometheus and prints its explanation, then stops what it started.

Rules only evaluate live, and the scenario lies in the past, so alerts are evaluated the honest way:
each alert expression is inlined over the recording rules it reads and run as a range query over its
`for` duration at the group's interval; an alert fires when its series is present at every step.
Progress goes to stderr, results (alerts, diagnosis) to stdout, so stdout ends with the diagnosis.
The diagnosis is `diagnose.engine.run` over the whole Prometheus (no scope): finding the model and
pod is its job, not the demo's.
"""
from __future__ import annotations

import argparse
import io
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


from ..diagnose import engine
from . import scenario
from ..core.config import duration_seconds, is_duration, load_config
from ..generate.writer import render, rule_groups
from ..core.promql import check, inline
from ..core.labels import SEVERITY, SOURCE_LABEL, TIER
from ..core.prometheus import PromClient, graph_url
from ..core.timefmt import iso
from ..core.rules import AlertingRule, RuleGroup, record_index

from .localprom import LocalPrometheus, write_openmetrics

STEPS = 5
QUIET_LABELS = {"alertname", SEVERITY, SOURCE_LABEL, TIER}  # same on every inferwatch alert or shown apart


@dataclass(frozen=True)
class FiringAlert:
    name: str
    labels: dict[str, str]
    held_for: str

    def line(self, identity: tuple[str, ...]) -> str:
        """`FIRING name [severity] label=value ...`: identity labels first, routing-only labels left out."""
        shown = [k for k in identity if k in self.labels]
        shown += sorted(k for k in self.labels if k not in shown and k not in QUIET_LABELS)
        where = " ".join(f"{k}={self.labels[k]}" for k in shown)
        return f"  FIRING {self.name} [{self.labels.get('severity', '')}] {where} (held {self.held_for})"


@dataclass(frozen=True)
class AlertCheck:
    """Every alerting rule's verdict at one instant; `errors` holds (alert, reason) of rules that could
    not be evaluated (e.g. a regex matcher on a recorded label, which `promql.inline` cannot expand)."""
    rules: int
    firing: tuple[FiringAlert, ...]
    errors: tuple[tuple[str, str], ...]


# ---- alerts at a past instant -----------------------------------------------------------------

def alerts_at(url: str, groups: list[RuleGroup], at: float) -> AlertCheck:
    """Alerts that would be firing at `at`: true at every evaluation of the last `for` duration."""
    index = record_index(groups)
    client = PromClient(url, timeout=60)
    firing, errors, count = [], [], 0
    for group in groups:
        step = duration_seconds(group.interval)
        for rule in group.rules:
            if not isinstance(rule, AlertingRule):
                continue
            count += 1
            hold = duration_seconds(rule.for_ or "0s")
            try:
                expr = check(inline(rule.expr, index))
                result = client.query_range(expr, at - hold, at, step, timeout=60)
            except (ValueError, RuntimeError) as exc:
                errors.append((rule.alert, str(exc).splitlines()[0]))
                continue
            needed = int(hold // step) + 1
            for series in result:
                if len(series["values"]) >= needed:
                    labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
                    firing.append(FiringAlert(rule.alert, {**labels, **rule.labels}, rule.for_ or "0s"))
    firing.sort(key=lambda a: (a.name, sorted(a.labels.items())))
    return AlertCheck(count, tuple(firing), tuple(errors))


# ---- diagnosis --------------------------------------------------------------------------------

def run_diagnosis(url: str, at: float, window: str) -> int:
    """The diagnosis engine over the whole demo Prometheus; prints its text report to stdout."""
    report = engine.run(url, engine.Scope(), at, window, load_config(None))
    out(report.render("text").rstrip())
    return 0


# ---- the demo -----------------------------------------------------------------------------------

def progress(n: int, text: str) -> None:
    print(f"[{n}/{STEPS}] {text}", file=sys.stderr, flush=True)


def out(text: str = "") -> None:
    print(text, flush=True)


def write_rule_files(folder: Path) -> list[Path]:
    files = render(load_config(None))
    paths = []
    for rel, text in files.items():
        if rel.startswith("prometheus/rules/"):
            path = folder / Path(rel).name
            path.write_text(text)
            paths.append(path)
    return paths


def explore_hint(prom: LocalPrometheus, sc: scenario.Scenario) -> str:
    graph = graph_url(prom.url, "vllm:kv_cache_usage_perc or sglang:token_usage", sc.start, sc.end)
    return (f"Prometheus keeps running at {prom.url} (pid {prom.pid}). The scenario's raw series span "
            f"{iso(sc.start)} to {iso(sc.end)}; recorded llm_* series are only evaluated from now on.\n"
            f"  try: {graph}\nPress Ctrl-C to stop it.")


def keep_alive(hint: str) -> None:
    """Print `hint`, then block until Ctrl-C or SIGTERM. The handlers are in place before the hint
    appears, so an interrupt sent as soon as it is read still ends here (and Prometheus is stopped); SIGINT
    gets one too, because a process started in the background (nohup, `cmd &` in a script) inherits it
    ignored and would otherwise never stop on it."""
    def interrupt(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        print(hint, file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def run(name: str, window: str, keep_running: bool) -> int:
    began = time.monotonic()
    sc = scenario.load(name)
    at = sc.start + (sc.incident_at if sc.incident_at is not None else sc.duration)
    out(f"inferwatch demo: {sc.name}\n{' '.join(sc.description.split())}\n")

    series = scenario.synthesize(sc)
    body = io.StringIO()
    samples = write_openmetrics(series, body)
    pods = sum(len(m.pods) for m in sc.models)
    progress(1, f"scenario {sc.name}: {sc.engine} {sc.version}, {len(sc.models)} models, {pods} pods, "
                f"{int(sc.duration // 60)}m every {int(sc.step)}s ({len(series)} series, {samples} samples)")

    groups = rule_groups(load_config(None))
    n_alerts = sum(isinstance(r, AlertingRule) for g in groups for r in g.rules)
    n_records = sum(len(g.rules) for g in groups) - n_alerts
    progress(2, f"rules: {len(groups)} groups, {n_records} recording and {n_alerts} alerting rules (default config)")

    with tempfile.TemporaryDirectory(prefix="inferwatch-demo-rules-") as folder:
        started = time.monotonic()
        prom = LocalPrometheus(body.getvalue(), rule_files=write_rule_files(Path(folder)))
        with prom:
            progress(3, f"Prometheus on {prom.url} (pid {prom.pid}): backfilled, rules loaded, ready in "
                        f"{time.monotonic() - started:.1f}s")
            pid = prom.pid
            progress(4, f"alerts at the incident time {iso(at)}")
            report_alerts(alerts_at(prom.url, groups, at), at)
            progress(5, f"diagnosis of the {window} before {iso(at)}")
            code = run_diagnosis(prom.url, at, window)
            if keep_running:
                keep_alive(explore_hint(prom, sc))
    print(f"stopped Prometheus (pid {pid}); demo took {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)
    return code


def report_alerts(check_: AlertCheck, at: float) -> None:
    out(f"Alerts firing at {iso(at)}: {len(check_.firing)} "
        f"({check_.rules} alerting rules, each checked over its whole `for` duration)")
    for alert in check_.firing:
        out(alert.line(load_config(None).labels.pod_keys()))
    if not check_.firing:
        out("  (none)")
    for name, reasons in group_errors(check_.errors).items():
        rules = f" ({len(reasons)} rules)" if len(reasons) > 1 else ""
        out(f"  could not evaluate {name}{rules}: {reasons[0]}")
    out()


def group_errors(errors: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    """Reasons per alert name: burn-rate alerts come in many rules that fail alike."""
    grouped: dict[str, list[str]] = {}
    for name, reason in errors:
        grouped.setdefault(name, []).append(reason)
    return grouped


# ---- command line -------------------------------------------------------------------------------

def command(args: argparse.Namespace) -> int:
    """`inferwatch demo` (arguments in inferwatch/cli.py)."""
    if not is_duration(args.window):
        print(f"inferwatch demo: --window: {args.window!r} is not a duration like 15m or 1h", file=sys.stderr)
        return 2
    try:
        return run(args.scenario, args.window, args.keep_running)
    except (scenario.ScenarioError, RuntimeError) as exc:
        print(f"inferwatch demo: {exc}", file=sys.stderr)
        return 2
