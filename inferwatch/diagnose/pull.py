"""Pull mode: `diagnose --alertmanager URL [--filter label=value ...]` investigates what fires now.

Reads the active, unsilenced, uninhibited alerts from Alertmanager's v2 API (GET /api/v2/alerts), keeps
inferwatch's own (`source="inferwatch"`, as the routing subtree does; a `--filter source=...` replaces
it), groups them by the routing tree's `group_by` (core/labels.py), and diagnoses each group like the
webhook receiver diagnoses one notification: the alerts' common labels as scope, their latest `startsAt` as
time (webhook.scope_of, Notification.latest_start). The alert's own PromQL comes from its `generatorURL`
(`g0.expr`): it is shown with the group, and the URL's base is the Prometheus to query when --prometheus
is not given.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests

from ..core.config import Config
from ..core.labels import OURS, SOURCE_LABEL, group_by, matcher

from .engine import Scope, run
from .html import page
from .webhook import Alert, Notification, PayloadError, parse_time, scope_of

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PullError(RuntimeError):
    """Alertmanager could not be read; the message is safe to print."""


@dataclass(frozen=True)
class Group:
    """Alerts Alertmanager would notify together, with what the diagnosis needs from them."""
    labels: dict[str, str]  # the group_by labels
    notification: Notification
    exprs: tuple[str, ...]  # the alerts' own PromQL, from generatorURL
    prometheus: str | None  # the base of the first generatorURL, if any


def parse_filters(items: list[str]) -> dict[str, str]:
    """`label=value` options; raises ValueError naming the bad one."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _LABEL.match(name):
            raise ValueError(f"--filter: expected label=value (e.g. namespace=llm), got {item!r}")
        out[name] = value
    return out


def matchers(filters: dict[str, str]) -> list[str]:
    """Alertmanager `filter` matchers; inferwatch's own alerts unless `source` is filtered explicitly."""
    own = [] if SOURCE_LABEL in filters else [OURS]
    return own + [matcher(k, "=", v) for k, v in filters.items()]


def fetch(url: str, filters: dict[str, str], timeout: float = 10.0) -> list[dict]:
    params = [("active", "true"), ("silenced", "false"), ("inhibited", "false"), ("unprocessed", "false")]
    params += [("filter", m) for m in matchers(filters)]
    try:
        resp = requests.get(url.rstrip("/") + "/api/v2/alerts", params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise PullError(f"Alertmanager {url} unreachable: {type(exc).__name__}") from None
    if resp.status_code != 200:
        raise PullError(f"Alertmanager {url}: HTTP {resp.status_code}: {resp.text.strip()[:200]}")
    try:
        alerts = resp.json()
    except ValueError:
        raise PullError(f"Alertmanager {url}: the answer is not JSON (is this the Alertmanager URL?)") from None
    if not isinstance(alerts, list):
        raise PullError(f"Alertmanager {url}: expected a list of alerts from /api/v2/alerts")
    # The query parameters already say so; an older or proxied API may ignore them.
    return [a for a in alerts if isinstance(a, dict) and a.get("status", {}).get("state") == "active"]


def generator(url: str) -> tuple[str | None, str | None]:
    """(PromQL, Prometheus base URL) from a generatorURL such as http://prom:9090/graph?g0.expr=..."""
    if not url:
        return None, None
    parts = urlsplit(url)
    expr = (parse_qs(parts.query).get("g0.expr") or [None])[0]
    path = re.sub(r"/(graph|query)/?$", "", parts.path)
    base = urlunsplit((parts.scheme, parts.netloc, path, "", "")) if parts.scheme in ("http", "https") else None
    return expr, base


def groups(cfg: Config, alerts: list[dict]) -> list[Group]:
    """Alerts grouped by the routing tree's group_by, in a stable order."""
    keys = group_by(cfg.labels)
    by_key: dict[tuple[str, ...], list[dict]] = {}
    for a in alerts:
        labels = a.get("labels") or {}
        by_key.setdefault(tuple(labels.get(k, "") for k in keys), []).append(a)
    out = []
    for key, members in sorted(by_key.items()):
        parsed = []
        for i, a in enumerate(members):
            try:
                parsed.append(Alert(status="firing", labels={k: str(v) for k, v in a["labels"].items()},
                                    starts_at=parse_time(a.get("startsAt"), f"alert {i} startsAt"),
                                    fingerprint=str(a.get("fingerprint", ""))))
            except (KeyError, AttributeError, PayloadError) as exc:
                raise PullError(f"Alertmanager answered an alert without usable labels or startsAt: {exc}") from None
        found = [generator(a.get("generatorURL", "")) for a in members]
        group_labels = {k: v for k, v in zip(keys, key) if v}
        group_key = "{}:{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in group_labels.items()) + "}"
        out.append(Group(group_labels, Notification(group_key, "firing", tuple(parsed)),
                         tuple(dict.fromkeys(e for e, _ in found if e)), next((b for _, b in found if b), None)))
    return out


class PullUsageError(ValueError):
    """A flag combination pull mode cannot serve (exit 2)."""


def command(args: argparse.Namespace, cfg: Config, connection: dict) -> list[str]:
    """Diagnose every group; prints one section (text, markdown), a JSON list, or writes HTML pages.
    Returns each group's report status (the caller turns them into the exit code)."""
    found = groups(cfg, fetch(args.alertmanager, parse_filters(args.filter)))
    if args.format == "html" and not args.report_dir:
        raise PullUsageError("--format html with --alertmanager writes one page per group: give --report-dir DIR")
    if not found:
        print(f"no active, unsilenced, uninhibited alerts match {', '.join(matchers(parse_filters(args.filter)))}",
              file=sys.stderr)
        if args.format == "json":
            print("[]")
        return []
    results, statuses = [], []
    now = datetime.now(timezone.utc)
    for g in found:
        prometheus = args.prometheus or g.prometheus
        if not prometheus:
            raise PullUsageError("--prometheus URL is required: the alerts carry no generatorURL to take it from")
        scope = {k: v for k, v in scope_of(g.notification, cfg).items() if v}
        at = min(g.notification.latest_start(), now)
        report = run(prometheus, Scope(**scope), at, str(args.window or cfg.diagnose.window), cfg,
                     charts=args.format == "html", **connection)
        statuses.append(report.status)
        title = ", ".join(g.notification.alertnames())
        context = [("alerts", title), ("group", ", ".join(f"{k}={v}" for k, v in g.labels.items())),
                   ("alerts in group", str(len(g.notification.alerts))), ("prometheus", report.prometheus_url)] + [("alert expression", e) for e in g.exprs]
        if args.format == "json":
            results.append({"group": g.labels, "alertnames": list(g.notification.alertnames()),
                            "alerts": len(g.notification.alerts), "exprs": list(g.exprs), "scope": scope,
                            "prometheus": report.prometheus_url,
                            "at": report.to_dict()["at"], "report": report.to_dict()})
        elif args.format == "html":
            args.report_dir.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join([*g.labels.values(), title]))[:120].strip("-")
            path = Path(args.report_dir) / f"{at:%Y%m%dT%H%M%SZ}-{slug}.html"
            path.write_text(page(report, title, context), encoding="utf-8")
            print(f"{report.status.upper()} {title}: {path}")
        else:
            md = args.format == "markdown"
            head = f"## {title}" if md else f"=== {title} ({len(g.notification.alerts)} alerts) ==="
            lines = [head] + [f"{'- ' if md else ''}{k}: {v}" for k, v in context[1:]]
            print("\n".join(lines) + "\n\n" + report.render(args.format))
    if args.format == "json":
        print(json.dumps(results, indent=2))
    return statuses
