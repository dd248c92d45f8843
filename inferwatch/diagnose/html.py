"""A diagnosis as one self-contained HTML page: verdict, chain, a chart per finding, evidence, query links.

Everything is inline (CSS, SVG charts from diagnose/svg.py); there is no script, no font file and no
external URL the browser would load, so the page opens offline, from a mail attachment or a ticket. Links
(not loads) go to the Prometheus graph page, and to Grafana Explore when `diagnose.grafana_url` is set, for
every query. Every value from Prometheus, alerts or the config is escaped.
"""
from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..core.config import duration_seconds
from ..core.prometheus import graph_url

from .charts import Chart
from .graph import BY_ID
from .wording import accounts, fmt, who
from .svg import SIBLING_COLOUR, draw, legend

if TYPE_CHECKING:
    from .report import Report

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2933;
 margin:0 auto;max-width:1080px;padding:0 20px 40px;background:#fff}
h1{font-size:22px;margin:0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e4e7eb;padding-bottom:4px}
h3{font-size:15px;margin:0 0 6px}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.verdict{margin:20px 0 8px;padding:14px 18px;border-radius:6px;border-left:8px solid #7b8794;background:#f5f7fa}
.verdict.degraded{border-color:#d62728;background:#fff1f0}.verdict.healthy{border-color:#2ca02c;background:#f0fff4}
.verdict.failed{border-color:#d62728;background:#fff1f0}.verdict p{margin:4px 0 0;color:#52606d}
.context td{padding:1px 12px 1px 0}
.chain li{margin:6px 0}.step{display:inline-block;padding:2px 8px;border-radius:10px;background:#e4e7eb;margin:0 2px}
.step.symptom{background:#ffe3e3}.step.root{background:#d62728;color:#fff;font-weight:600}
.finding{border:1px solid #e4e7eb;border-radius:6px;padding:12px 14px;margin:12px 0}
.finding .meta{color:#52606d;margin:0 0 6px}
figure.chart{margin:6px 0}figure.chart svg{max-width:100%;height:auto;font-size:11px;fill:#52606d}
figcaption{font-size:12px;color:#52606d}.swatch{display:inline-block;width:14px;height:3px;vertical-align:middle;
 margin:0 4px 0 10px}
table{border-collapse:collapse;margin:6px 0}th,td{text-align:left;padding:3px 10px 3px 0;vertical-align:top}
th{color:#52606d;font-weight:600;border-bottom:1px solid #e4e7eb}
.links a{margin-right:12px}details pre{white-space:pre-wrap;word-break:break-all;background:#f5f7fa;padding:8px}
footer{margin-top:30px;color:#7b8794;font-size:12px}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def grafana_link(base: str, datasource: str, expr: str, start: float, end: float) -> str:
    """Grafana Explore (10+, `panes` URL schema) with `expr` over [start, end]."""
    pane = {"iw": {"datasource": datasource, "range": {"from": str(int(start * 1000)), "to": str(int(end * 1000))},
                   "queries": [{"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": datasource}}]}}
    params = {"schemaVersion": "1", "orgId": "1", "panes": json.dumps(pane, separators=(",", ":"))}
    return f"{base.rstrip('/')}/explore?{urlencode(params, quote_via=quote)}"


def _links(report: Report, expr: str, start: float) -> str:
    out = []
    if report.prometheus_url:
        out.append(f'<a href="{_e(graph_url(report.prometheus_url, expr, start, report.at))}">Prometheus</a>')
    d = report.cfg.diagnose
    if d.grafana_url:
        out.append(f'<a href="{_e(grafana_link(d.grafana_url, d.grafana_datasource, expr, start, report.at))}">'
                   f'Grafana Explore</a>')
    return f'<span class="links">{"".join(out)}</span>' if out else ""


def _chart(report: Report, chart: Chart | None) -> str:
    if chart is None:
        return '<p class="meta">No chart: the series were not fetched.</p>'
    keys = "".join(f'<span class="swatch" style="background:{c}"></span>{_e(name)}' for c, name, _ in legend(chart))
    siblings = sum(not line.faulty for line in chart.lines)
    if siblings:
        keys += f'<span class="swatch" style="background:{SIBLING_COLOUR}"></span>{siblings} siblings'
    unit = f" ({_e(chart.unit)})" if chart.unit else ""
    return (f'<figure class="chart" data-node="{_e(chart.node)}" data-signal="{_e(chart.signal)}">{draw(chart)}'
            f'<figcaption><code>{_e(chart.signal)}</code>{unit}: {keys} '
            f'{_links(report, chart.expr, chart.start)}</figcaption></figure>')


def _evidence_rows(items: list[dict[str, Any]]) -> str:
    rows = []
    for entity, onset, ev in items:
        for e in ev or [{}]:
            if not e:
                cells = ["", "", "", ""]
            elif e["against"] == "vanished":
                cells = [e["signal"], "no series any more", "", "vanished"]
            else:
                cells = [e["signal"], fmt(e["value"], e["unit"]),
                         "" if e["reference"] is None else f"{e['op']} {fmt(e['reference'], e['unit'])}", e["against"]]
            rows.append(f"<tr><td>{_e(who(entity))}</td><td>{_e(onset or '')}</td>"
                        + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return ('<table class="evidence"><tr><th>where</th><th>since</th><th>signal</th><th>value</th><th>compared with</th>'
            f'<th>reference</th></tr>{"".join(rows)}</table>')


def _clock(ts: str | None) -> str:
    return ts[11:16] if ts else "?"


def page(report: Report, title: str = "", context: list[tuple[str, str]] = ()) -> str:
    """The whole page. `title` and `context` (label, value rows) describe what asked for the diagnosis."""
    d = report.to_dict()
    charts = {c.node: c for c in report.charts}
    scope = " ".join(f"{k}={v}" for k, v in report.scope.items()) or "all inference pods"
    body = [f'<header class="verdict {_e(report.status)}"><h1>{_e(report.status.upper())}'
            f'{" · " + _e(title) if title else ""}</h1>'
            f'<p>{_e(scope)} · at {_e(d["at"])} · window {_e(report.window)}</p></header>']
    if context:
        body.append('<table class="context">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
                                                        for k, v in context) + "</table>")
    if d["root_causes"]:
        items = []
        for r in d["root_causes"]:
            steps = [f'<span class="step{" symptom" if i == 0 else ""}{" root" if i == len(r["path"]) - 1 else ""}">'
                     f'{_e(n)}</span>' for i, n in enumerate(r["path"])]
            items.append(f'<li data-cause="{_e(r["cause"])}">{" → ".join(steps)} <span class="meta">score '
                         f'{r["score"]:.2f}, since {_e(_clock(r["onset"]))}</span></li>')
        body.append(f'<section id="chain"><h2>From symptom to root cause</h2><ol class="chain">{"".join(items)}</ol>'
                    f'</section>')
    elif not d["symptoms"]:
        body.append('<p>No symptom: latency, errors and throughput match their baseline and thresholds.</p>'
                    if report.status == "healthy" else '<p>No data in this scope and time.</p>')
    if d["symptoms"]:
        body.append('<section id="symptoms"><h2>Symptoms</h2>')
        for s in d["symptoms"]:
            rows = [(e["entity"], _clock(e["onset"]), e["evidence"]) for e in s["entities"]]
            body.append(f'<article class="finding" data-node="{_e(s["symptom"])}"><h3><code>{_e(s["symptom"])}</code> '
                        f'{_e(s["title"])}</h3>{_chart(report, charts.get(s["symptom"]))}{_evidence_rows(rows)}'
                        f'</article>')
        body.append("</section>")
    if d["root_causes"]:
        body.append('<section id="causes"><h2>Root causes</h2>')
        for r in d["root_causes"]:
            rows = [(e["entity"], _clock(r["onset"]), [e]) for e in r["evidence"]]
            more = f" (+{r['entity_count'] - len(r['entities'])} more)" if r["entity_count"] > len(r["entities"]) else ""
            after = " Went anomalous after the symptom." if r["onset_vs_symptom"] == "after" else ""
            body.append(
                f'<article class="finding" data-node="{_e(r["cause"])}"><h3>{r["rank"]}. <code>{_e(r["cause"])}</code> '
                f'{_e(r["title"])}</h3><p class="meta">where: {_e(", ".join(who(e) for e in r["entities"]))}{_e(more)}'
                f' · since {_e(_clock(r["onset"]))}.{_e(after)}</p>{_chart(report, charts.get(r["cause"]))}'
                f'{_evidence_rows(rows)}{_accounts(r["accounting"])}<p><b>Next step:</b> {_e(r["next_step"])}</p>'
                f'</article>')
        body.append("</section>")
    if report.errors:
        body.append('<section id="errors"><h2>Errors (partial result)</h2><ul>'
                    + "".join(f"<li><code>{_e(e['node'])}</code>: {_e(e['error'])}</li>" for e in report.errors)
                    + "</ul></section>")
    if report.query_texts:
        start = report.at - 2 * duration_seconds(report.window)
        rows = "".join(
            f'<tr><td><code>{_e(n)}</code> {_e(BY_ID[n].title)}</td><td>{_e(report.nodes[n].state)}</td>'
            f'<td>{_links(report, q, start)}<details><summary>PromQL</summary><pre>{_e(q)}</pre></details></td></tr>'
            for n, q in report.query_texts.items())
        body.append(f'<section id="queries"><h2>Queries</h2><details><summary>{len(report.query_texts)} node queries '
                    f'and their state</summary><table><tr><th>node</th><th>state</th><th></th></tr>{rows}</table>'
                    f'</details></section>')
    body.append(f'<footer>{report.queries} queries in {report.duration_seconds:.2f}s against '
                f'{_e(report.prometheus_url or "Prometheus")} · inferwatch diagnose</footer>')
    return _document(f"inferwatch: {report.status.upper()} {title or scope}", "".join(body))


def _accounts(acc: dict) -> str:
    """Little's law and the TTFT split on the cause's pods (diagnose/accounting.py), when they exist."""
    lines = accounts(acc)
    if not lines:
        return ""
    return f'<ul class="accounts">{"".join(f"<li>{_e(line)}</li>" for line in lines)}</ul>'


def failure_page(title: str, error: str, context: list[tuple[str, str]]) -> str:
    """The page of a diagnosis that could not run (Prometheus down): what was asked and why it failed."""
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in context)
    return _document(f"inferwatch: FAILED {title}",
                     f'<header class="verdict failed"><h1>DIAGNOSIS FAILED · {_e(title)}</h1><p>{_e(error)}</p>'
                     f'</header><table class="context">{rows}</table>')


def _document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            f'img-src data:"><title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n')
