"""End to end on an incident: the generated rules fire under promtool's rule manager, a real Alertmanager
with the generated routing receives exactly those alerts, and `inferwatch serve` (against a real
Prometheus holding the same incident) writes a report naming the cause.

Time from fault onset to the report on disk = detection (onset -> first alert firing, in the incident's
own time, from the rule manager) + delivery and diagnosis (wall clock from the alerts reaching
Alertmanager to the report file). Printed with `pytest -s`; docs/webhook.md quotes it.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from conftest import synthesized
from test_alerts import DEFAULT, load_as, promtool, write_rules
from test_webhook import records, serve_process, wait_for
from inferwatch.core.config import parse_config
from inferwatch.generate import routing
from inferwatch.sandbox import scenario
from inferwatch.sandbox.localprom import LocalAlertmanager

SCENARIO = "vllm-kv-cache-pressure"
ONSET_S = 90 * 60  # its event's `at`
HORIZON_S = 10 * 60  # alerts that fired within the first 10 minutes go to Alertmanager


def fired_alerts(tmp_path) -> list[tuple[float, dict[str, str]]]:
    """(seconds from the scenario start, labels) of each alert's first firing, from promtool's ALERTS."""
    expr = 'min_over_time(timestamp(ALERTS{alertstate="firing"})[2h:30s])'
    sc, series = scenario.load(SCENARIO), synthesized(SCENARIO)  # the series the Prometheus below holds
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, [],
                   [{"expr": expr, "eval_time": "2h", "exp_samples": []}])
    [got] = re.findall(r"got: (.*)", res.stderr)
    out = []
    for labels, value in re.findall(r"(\{[^}]*\}) ([-+.\dE]+)", got):
        lb = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        lb.pop("alertstate")
        out.append((float(value), lb))
    return sorted(out, key=lambda x: x[0])


def top_cause(rec: dict) -> str | None:
    causes = (rec.get("report") or {}).get("root_causes") or []
    return causes[0]["cause"] if causes else None


def test_fired_alerts_reach_serve_through_alertmanager_and_the_report_names_the_cause(scenario_prometheus,
                                                                                        tmp_path):
    sc = load_as(SCENARIO, "vllm")
    fired = [(t, lb) for t, lb in fired_alerts(tmp_path) if ONSET_S <= t <= ONSET_S + HORIZON_S]
    assert fired, "no alert fired within 10 minutes of the onset"
    first = fired[0][0]
    last = fired[-1][0]
    iso = lambda t: datetime.fromtimestamp(sc.start + t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    with serve_process(scenario_prometheus(SCENARIO).url, "--markdown-dir", str(tmp_path / "md"),
                       "--jsonl", str(tmp_path / "d.jsonl")) as (url, proc):
        cfg = parse_config(f"routing: {{diagnose_url: '{url}/alerts'}}")  # default group_wait: 5s
        with LocalAlertmanager(routing.sample_config(cfg)) as am:
            posted = time.monotonic()
            am.post_alerts([{"labels": lb, "startsAt": iso(t)} for t, lb in fired])
            naming = lambda: [r for r in records(tmp_path / "d.jsonl")  # noqa: E731
                              if top_cause(r) == "kv_cache_pressure"]
            wait_for(naming, timeout=60, what="a report naming the cause")
            rec = min(naming(), key=lambda r: r["at"])
            pipeline = time.monotonic() - posted
            md = wait_for(lambda: [p.read_text() for p in (tmp_path / "md").glob("*.md")
                                   if "kv_cache_pressure" in p.read_text()], timeout=10, what="its markdown")
            every = records(tmp_path / "d.jsonl")
    assert "chat-1" in md[0]
    at = datetime.fromisoformat(rec["at"].replace("Z", "+00:00")).timestamp() - sc.start
    names = sorted({lb["alertname"] for _, lb in fired})
    minute = lambda r: (datetime.fromisoformat(r["at"].replace("Z", "+00:00")).timestamp() - sc.start - ONSET_S) / 60  # noqa: E731
    seen = [f"{minute(r):.1f} min: {top_cause(r) or r['report'].get('status')} ({','.join(r['alertnames'])})"
            for r in sorted(every, key=lambda r: r["at"])]
    print(f"\n{SCENARIO}: alerts {', '.join(names)}; first fired {(first - ONSET_S) / 60:.1f} min after onset, "
          f"last of the first 10 min at {(last - ONSET_S) / 60:.1f} min. Reports (diagnosed at, after onset): "
          f"{'; '.join(seen)}. Alertmanager -> serve -> report naming the cause on disk: {pipeline:.1f} s")
    assert pipeline < 45
    page = [r for r in every if "LLMModelErrorBudgetBurn" in r["alertnames"]]
    assert page and page[0]["report"]["status"] == "healthy", "the page's first look is too early to name it"
    assert (at - ONSET_S) / 60 <= 10, "the follow-up names the cause within 10 minutes of the onset"
