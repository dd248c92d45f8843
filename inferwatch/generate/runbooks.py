"""Runbook pages (one per alert) and the alert x backend support matrix, generated from `alerts.ALERTS`.

Written by `inferwatch generate` to `<output>/runbooks/`; the repository commits them under
`rules/runbooks/`, so `runbook_url` (`output.runbook_base_url`) and the pages can never disagree with the
rules. Support is computed from the backend catalogs: a signal is supported when a source needs nothing
extra, "needs ..." when every source needs an engine flag or a custom exporter CSV, and "-" when the
backend has no source at all.
"""
from __future__ import annotations

from pathlib import Path

import jinja2

from . import slo
from .alerts import ALERTS, Alert, rules_of, severity_of
from ..core.catalog import Catalog, load_catalog, parent
from ..core.config import Config, duration_seconds
from ..core.promql import check
from ..core.signals import signal

TEMPLATES = Path(__file__).parent / "templates"
NOT_AVAILABLE = "-"


def engines(cfg: Config) -> list[Catalog]:
    return [load_catalog(e) for e in dict.fromkeys(parent(b) for b in cfg.backends)]


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def signal_support(engine: Catalog, name: str) -> tuple[int, str]:
    """(rank, text): 0 supported, 1 supported from a version, 2 needs a flag/CSV, 3 not available."""
    cat = load_catalog("dcgm") if signal(name).tier == "gpu" else engine
    sources = cat.of(name)
    if not sources and cat is engine and not engine.engine.endswith("-pd") \
            and (pd := load_catalog(f"{engine.engine}-pd")).of(name):
        rank, text = signal_support(pd, name)  # a prefill/decode signal: only the -pd backend has it
        return rank, text if rank == 3 else f"{pd.display}: {text}"
    if not sources:
        return 3, NOT_AVAILABLE
    plain = [s for s in sources if not s.requires]
    if not plain:
        return 2, f"needs {sources[0].requires}"
    if all(s.since for s in plain):
        return 1, f"yes (>= {min((s.since for s in plain), key=_version_key)})"
    return 0, "yes"


def support(engine: Catalog, a: Alert) -> str:
    """The worst of the alert's signal groups, each group as good as its best signal."""
    worst = (0, "yes")
    for group in a.needs:
        best = min(signal_support(engine, s) for s in group)
        worst = max(worst, best)
    text = worst[1]
    if a.also_needs and worst[0] < 3:
        text += f"; needs {a.also_needs.split(' (')[0]}"
    return text


def matrix(cfg: Config) -> str:
    """Markdown table: each alert by backend."""
    cats = engines(cfg)
    head = "| Alert | Tier | Severity | " + " | ".join(c.display for c in cats) + " |\n"
    head += "|---|---|---|" + "---|" * len(cats) + "\n"
    rows = [f"| [{a.name}]({a.name}.md) | {a.tier} | {_severity_text(cfg, a)} | "
            + " | ".join(support(c, a) for c in cats) + " |" for a in ALERTS]
    return head + "\n".join(rows) + "\n"


def _severity_text(cfg: Config, a: Alert) -> str:
    if a.name == slo.ALERT:
        return "critical (page tiers), warning (ticket tiers)"
    return severity_of(cfg, a)


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def page(cfg: Config, a: Alert) -> str:
    rules = rules_of(cfg, a)
    queries = [check(r.expr) for r in rules[:2]] + [check(q) for q in a.confirm(cfg)]
    fors = sorted({r.for_ or "0s" for r in rules}, key=duration_seconds)
    keys = "`slo:`" if a.name == slo.ALERT else f"`alerts:`, `alerts.severity.{a.name}`, `alerts.for_durations`"
    note = (f"This alert has {len(rules)} rules (one per SLO, model override and burn tier); the queries "
            "below are the first of them." if len(rules) > 2 else "")
    remedies = [(_backend_title(k), v) for k, v in a.remedies.items()]
    identity = ", ".join(f"`{k}`" for k in (cfg.labels.pod_keys() if a.tier != "model" else cfg.labels.model_keys()))
    cats = engines(cfg)
    table = ("| Tier | Severity | `for` | " + " | ".join(c.display for c in cats) + " |\n"
             + "|---|---|---|" + "---|" * len(cats) + "\n"
             + f"| {a.tier} | {_severity_text(cfg, a)} | {', '.join(fors)} | "
             + " | ".join(support(c, a) for c in cats) + " |")
    text = _env().get_template("runbook.md.j2").render(
        a=a, table=table, queries=queries, remedies=remedies,
        description_note=note, config_keys=keys, identity=identity)
    return _squeeze(text)


def _backend_title(key: str) -> str:
    return {"vllm": "vLLM", "sglang": "SGLang", "any": "Any backend"}.get(key, key)


def _squeeze(text: str) -> str:
    """At most one blank line in a row, one trailing newline."""
    out: list[str] = []
    for line in text.splitlines():
        if line.strip() or (out and out[-1].strip()):
            out.append(line.rstrip())
    return "\n".join(out).rstrip() + "\n"


INDEX_HEAD = """# inferwatch runbooks

One page per alert, generated by `inferwatch generate` from `inferwatch/generate/alerts.py`; do not edit.
Alert rules link here through `runbook_url` (`output.runbook_base_url`).

## Alerts by backend

"yes" works with the engine's default metrics, "yes (>= v)" from that engine version, "needs ..." only with
an engine flag or a custom dcgm-exporter counters CSV, "-" not available. SGLang exports metrics only with
`--enable-metrics`. GPU alerts need dcgm-exporter with Kubernetes pod mapping.

"""


def index(cfg: Config) -> str:
    return INDEX_HEAD + matrix(cfg)


def artifacts(cfg: Config) -> dict[str, str]:
    if not cfg.alerts.enabled:
        return {}
    out = {f"runbooks/{a.name}.md": page(cfg, a) for a in ALERTS if a.tier != "gpu" or cfg.gpu.enabled}
    out["runbooks/README.md"] = index(cfg)
    return out
