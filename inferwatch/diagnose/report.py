"""The diagnosis result and its renderings: text (a tree read in ten seconds), JSON (the stable schema
documented in docs/diagnose.md), markdown (for an incident channel or ticket) and a self-contained HTML
page with charts (diagnose/html.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core import failures
from ..core.config import Config
from ..core.timefmt import iso

from .charts import Chart
from .wording import accounts, fmt, who
from .evidence import Finding, NodeResult
from .scope import Key, pod_key
from .graph import BY_ID
from .ranking import RootCause

SCHEMA = "inferwatch.diagnose/v1"
FORMATS = ("text", "json", "markdown", "html")
MAX_ENTITIES = 20  # per root cause in the output; the count is always complete


def entity(cfg: Config, f: Finding, models_of_pod: dict[Key, set[str]]) -> dict[str, str]:
    """An entity under stable names (pod, gpu, model_name, ...) whatever the configured label names."""
    lb, lab = cfg.labels, f.labels
    out = {"cluster": lab.get(lb.cluster, "") if lb.cluster else "", "namespace": lab.get(lb.namespace, ""),
           "workload": lab.get(lb.workload, ""), "model_name": lab.get(lb.model, ""), "role": lab.get(lb.role, ""),
           "pod": lab.get(lb.pod, ""), "gpu": lab.get("gpu", ""), "uuid": lab.get("UUID", ""),
           "hostname": lab.get("hostname", "")}
    if f.tier == "gpu":
        out["model_name"] = ", ".join(sorted(models_of_pod.get(pod_key(cfg, lab), ())))
    return {k: v for k, v in out.items() if v}


@dataclass
class Report:
    status: str  # healthy | degraded | partial | unknown
    scope: dict[str, str]
    at: float
    window: str
    symptoms: list[tuple[str, list[Finding]]]
    root_causes: list[RootCause]
    nodes: dict[str, NodeResult]
    sources: dict[str, dict[str, Any]]
    errors: list[dict[str, str]]
    queries: int
    duration_seconds: float
    cfg: Config = field(repr=False, default_factory=Config)
    models_of_pod: dict[Key, set[str]] = field(repr=False, default_factory=dict)
    timings: dict[str, float] = field(repr=False, default_factory=dict)  # seconds per request (benchmarks)
    charts: list[Chart] = field(repr=False, default_factory=list)  # only when asked for (the HTML page)
    prometheus_url: str = ""  # without credentials: the HTML page links every query there
    query_texts: dict[str, str] = field(repr=False, default_factory=dict)  # node -> its PromQL
    accounting: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)  # cause -> accounting.account

    # ---- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "status": self.status,
            "scope": self.scope,
            "at": iso(self.at),
            "window": self.window,
            "symptoms": [{"symptom": s, "tier": BY_ID[s].tier, "title": BY_ID[s].title,
                          "entities": [self._finding(f) for f in fs]} for s, fs in self.symptoms],
            "root_causes": [self._root(i + 1, r) for i, r in enumerate(self.root_causes)],
            "nodes": {n: r.state for n, r in self.nodes.items()},
            "sources": self.sources,
            "errors": self.errors,
            "unchecked": [{"node": e["node"], "title": BY_ID[e["node"]].title if e["node"] in BY_ID else e["node"],
                           "reason": e["error"]} for e in self.errors],
            "stats": {"queries": self.queries, "duration_seconds": round(self.duration_seconds, 3)},
        }

    def _finding(self, f: Finding) -> dict[str, Any]:
        return {"entity": entity(self.cfg, f, self.models_of_pod), "onset": iso(f.onset),
                "persistence": round(f.persistence, 2), "evidence": [e.to_dict() for e in f.evidence]}

    def _root(self, rank: int, r: RootCause) -> dict[str, Any]:
        node = BY_ID[r.cause]
        shown = r.findings[:MAX_ENTITIES]
        return {
            "rank": rank, "cause": r.cause, "tier": r.tier, "score": r.score, "title": node.title,
            "entities": [entity(self.cfg, f, self.models_of_pod) for f in shown],
            "entity_count": len(r.findings),
            "path": list(r.paths[0]), "other_paths": [list(p) for p in r.paths[1:5]],
            "onset": iso(r.onset), "symptom_onset": iso(r.symptom_onset),
            "onset_vs_symptom": "after" if r.after_symptom else "before_or_with",
            "evidence": [dict(e.to_dict(), entity=entity(self.cfg, f, self.models_of_pod))
                         for f in shown[:3] for e in f.evidence],
            "triggers": [{"node": n, "title": BY_ID[n].title, "entity": entity(self.cfg, f, self.models_of_pod),
                          "evidence": [e.to_dict() for e in f.evidence]} for n, f in r.triggers[:MAX_ENTITIES]],
            "accounting": self.accounting.get(r.cause, {}),
            "next_step": failures.BY_ID[r.cause].remedy_text(),
        }

    # ---- renderings ------------------------------------------------------------------------------

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        if fmt == "text":
            return "\n".join(self._lines(md=False)) + "\n"
        if fmt == "markdown":
            return "\n".join(self._lines(md=True)) + "\n"
        if fmt == "html":
            from .html import page
            return page(self)
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")

    def _lines(self, md: bool) -> list[str]:
        d = self.to_dict()
        scope = " ".join(f"{k}={v}" for k, v in self.scope.items()) or "all inference pods"
        head = f"{self.status.upper()}  {scope}  at {d['at']} (window {self.window})"
        out = [f"### inferwatch diagnose: {head}" if md else head]
        if not self.symptoms:
            out += ["", _NO_SYMPTOM[self.status]]
        else:
            out += ["", "**Symptoms**" if md else "Symptoms"]
            for s in d["symptoms"]:
                for e in s["entities"][:5]:
                    out.append(f"{'- ' if md else '  '}{_code(s['symptom'], md)} {who(e['entity'])}: "
                               f"{_numbers(e['evidence'])} (since {_clock(e['onset'])})")
        if d["root_causes"]:
            out += ["", "**Root causes**" if md else "Root causes"]
            for r in d["root_causes"]:
                out += self._cause_lines(r, md)
        if self.errors:
            out += ["", "**Not checked** (partial result)" if md else "Not checked (partial result)"]
            out += [f"{'- ' if md else '  '}{_code(u['node'], md)} ({u['title']}): {u['reason']}"
                    for u in d["unchecked"]]
        out += ["", f"{'_' if md else ''}{self.queries} queries in {self.duration_seconds:.2f}s; "
                    f"series: {', '.join(sorted({v['mode'] for v in self.sources.values()} - {'missing'})) or 'none'}"
                    f"{'_' if md else ''}"]
        return out

    def _cause_lines(self, r: dict[str, Any], md: bool) -> list[str]:
        ind = "   " if md else "     "
        where = ", ".join(who(e) for e in r["entities"][:6])
        more = f" (+{r['entity_count'] - 6} more)" if r["entity_count"] > 6 else ""
        after = " [went anomalous after the symptom]" if r["onset_vs_symptom"] == "after" else ""
        first = (f"{r['rank']}. {_code(r['cause'], md)} score {r['score']:.2f}: {r['title']}{after}")
        trig = [f"{ind}{'- ' if md else ''}trigger: {t['title']} ({who(t['entity'])}: {_numbers(t['evidence'][:2])})"
                for t in r["triggers"][:2]]
        return [f"{'' if md else '  '}{first}",
                f"{ind}{'- ' if md else ''}where: {where}{more}",
                f"{ind}{'- ' if md else ''}chain: {' <- '.join(r['path'])} (since {_clock(r['onset'])})",
                f"{ind}{'- ' if md else ''}evidence: {_numbers(r['evidence'][:4])}", *trig,
                *(f"{ind}{'- ' if md else ''}accounts: {line}" for line in accounts(r["accounting"])),
                f"{ind}{'- ' if md else ''}next: {r['next_step']}"]


_NO_SYMPTOM = {"healthy": "No symptom: latency, errors and throughput match their baseline and thresholds.",
               "unknown": "No data: no inference series in this scope and time (check --namespace, --model, "
                          "--at and the label names in --config).",
               "partial": "No symptom in what could be checked, but some checks failed (listed below): "
                          "this is not a clean bill of health.",
               "degraded": ""}


def _code(text: str, md: bool) -> str:
    return f"`{text}`" if md else text


def _clock(ts: str | None) -> str:
    return ts[11:16] if ts else "?"


def _numbers(evidence: list[dict[str, Any]]) -> str:
    parts = []
    for e in evidence:
        if e["against"] == "vanished":
            parts.append(f"{e['signal']}: no series any more")
            continue
        ref = "" if e["reference"] is None else f" {e['op']} {fmt(e['reference'], e['unit'])} ({e['against']})"
        parts.append(f"{e['signal']} {fmt(e['value'], e['unit'])}{ref}")
    return "; ".join(dict.fromkeys(parts))
