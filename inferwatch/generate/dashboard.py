"""The three-tier Grafana dashboard: Model level, Pod level, GPU per pod.

Every panel reads the normalized recording rules (`llm_model:*`, `llm_pod:*`, `llm_gpu:*`), so one
dashboard serves every backend; records computed at query time (core/records.py) are inlined, scoped
to the selected model. Queries are `promql` trees whose Grafana variables enter as regex
matchers (`namespace=~"$namespace"`); variable names are the configured label names. Each panel's
description says which backends support it, derived from the catalogs, so the text cannot drift from
what the recording rules can actually produce. Emitted as importable JSON and as a ConfigMap for the
Grafana sidecar.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from ..core import schema
from ..core.catalog import load_catalog
from ..core.schema import Support
from ..core.config import Config
from ..core.labels import SOURCE, SOURCE_LABEL
from ..core.promql import Agg, BinOp, Expr, Matcher, Num, Selector, agg, check, inline, positive
from ..core.records import _qlabel
from ..core.rules import HEADER, dump_yaml
from ..core.signals import GPU, MODEL, POD, info_names, record_names, signal

# Derived signals are available where their inputs are (or a direct fallback source exists).
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT, COLUMNS = 8, 8, 3


# ---- the model --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One query of a panel and the normalized signals it reads (for backend support)."""
    name: str
    expr: Expr
    legend: str
    signals: tuple[str, ...]


@dataclass(frozen=True)
class Panel:
    title: str
    help: str
    unit: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Section:
    title: str
    panels: tuple[Panel, ...]


def target_support(backend: str, target: Target) -> Support:
    """A query is as supported as its least supported signal (conditions of all of them)."""
    parts = [schema.support(backend, s) for s in target.signals]
    if not all(p.available for p in parts):
        return Support(False)
    since = max((p.since for p in parts if p.since), key=schema.version_key, default=None)
    return Support(True, since, next((p.requires for p in parts if p.requires), None))


def available_at(backend: str, target: Target, version: str | None) -> bool:
    return schema.available_at(backend, target.signals, version)


def support_text(cfg: Config, panel: Panel, tier: str) -> str:
    """One clause per backend: supported (with conditions) or not; GPU panels name dcgm-exporter."""
    if tier == GPU:
        cat = load_catalog(schema.GPU_SOURCE)
        extra = [f"{t.name} {', '.join(s.conditions)}" for t in panel.targets
                 if (s := target_support(schema.GPU_SOURCE, t)).conditions]
        default = ["default counters"] if len(extra) < len(panel.targets) else []
        return f"Source: {cat.display} {cat.versions} (any backend): " + "; ".join(default + extra) + "."
    clauses = []
    for backend in cfg.backends:
        found = [target_support(backend, t) for t in panel.targets]
        usable = [s for s in found if s.available]
        if not usable:
            text = "not exposed"
        elif any(not s.conditions for s in usable):
            text = "yes"
        else:
            text = ", ".join(dict.fromkeys(c for s in usable for c in s.conditions))
        if usable and len(usable) < len(found):
            text += f" (no {', '.join(t.name for t, s in zip(panel.targets, found) if not s.available)})"
        clauses.append(f"{load_catalog(backend).display}: {text}")
    return "Backends: " + "; ".join(clauses) + "."


# ---- query building blocks ------------------------------------------------------------------

def variable_names(cfg: Config) -> tuple[str, ...]:
    """Dashboard variables, outermost first; each is named after the label it filters."""
    lb = cfg.labels
    return tuple(n for n in (lb.cluster, lb.namespace, lb.workload, lb.model) if n)


def scoped(cfg: Config, metric: str, *extra: Matcher, model: bool = True) -> Selector:
    """`metric{label=~"$label", ...}` for every dashboard variable (GPU series carry no model)."""
    names = [n for n in variable_names(cfg) if model or n != cfg.labels.model]
    return Selector(metric, tuple(Matcher(n, f"${n}", "=~") for n in names) + extra)


def record(cfg: Config, level: str, name: str, role: str) -> str:
    return record_names(signal(name), level, cfg.recording.rate_window)[role]


def lab(name: str) -> str:
    """A Grafana legend placeholder."""
    return "{{" + name + "}}"


def top_quantile(cfg: Config) -> tuple[str, str]:
    """(label value, title) of the highest configured quantile, used by per-pod latency panels."""
    q = max(cfg.recording.quantiles)
    return _qlabel(q), f"p{q * 100:g}"


# ---- Model level ----------------------------------------------------------------------------

def model_section(cfg: Config) -> Section:
    lb = cfg.labels
    who = f"{lab(lb.workload)}/{lab(lb.model)} {lab(lb.role)}".rstrip()
    sel = lambda name, role, *m: scoped(cfg, record(cfg, MODEL, name, role), *m)  # noqa: E731
    requests = sel("requests", "rate")
    errors = agg("sum", sel("request_errors", "rate"), lb.model_keys())
    success = (requests - errors.or_(requests * 0)) / positive(requests)

    def latency(title: str, name: str, help: str) -> Panel:
        return Panel(title, help, "s", (
            Target("quantiles", sel(name, "quantile"), f"{who} p{lab('quantile')}", (name,)),
            Target("mean", sel(name, "mean"), f"{who} mean", (name,))))

    return Section("Model level", (
        Panel("Request rate", "Finished requests per second, and failed ones by reason.", "reqps", (
            Target("finished", requests, who, ("requests",)),
            Target("failed", sel("request_errors", "rate"), f"{who} {lab('reason')}", ("request_errors",)))),
        Panel("Success ratio", "Share of finished requests that did not fail: engine errors, aborts and HTTP "
              "5xx count as failures (vLLM aborts are often client cancellations: see Request rate).",
              "percentunit", (Target("success", success, who, ("requests", "request_errors")),)),
        Panel("Finish reasons", "Finished requests per second by finish reason (stop, length, abort, error).",
              "reqps", (Target("by reason", sel("requests_finished", "rate"), f"{who} {lab('finished_reason')}",
                               ("requests_finished",)),)),
        latency("Time to first token", "ttft_seconds", "TTFT quantiles and mean; includes queueing and prefill."),
        latency("Inter-token latency", "itl_seconds", "Time between output tokens while decoding."),
        latency("End-to-end latency", "e2e_latency_seconds", "Whole-request latency, arrival to last token."),
        latency("Queue time", "queue_time_seconds", "Time a request waits before its first forward pass."),
        Panel("Token throughput", "Prompt (prefill) and generated tokens per second.", "suffix: tok/s", (
            Target("prompt", sel("prompt_tokens", "rate"), f"{who} prompt", ("prompt_tokens",)),
            Target("generated", sel("generation_tokens", "rate"), f"{who} generated", ("generation_tokens",)))),
        Panel("Running and waiting requests", "Requests in the running batch and in the queue, summed over pods.",
              "short", (
                  Target("running", sel("requests_running", "value"), f"{who} running", ("requests_running",)),
                  Target("waiting", sel("requests_waiting", "value"), f"{who} waiting", ("requests_waiting",)))),
        Panel("KV-cache usage", "Fullest pod and pod average; near 100% with preemptions means KV pressure.",
              "percentunit", (
                  Target("fullest pod", sel("kv_cache_usage", "value"), f"{who} max", ("kv_cache_usage",)),
                  Target("average", sel("kv_cache_usage", "avg"), f"{who} avg", ("kv_cache_usage",)))),
        Panel("Preemptions", "Requests preempted (vLLM) or retracted (SGLang) per second; each one recomputes.",
              "ops", (Target("preemptions", sel("preemptions", "rate"), who, ("preemptions",)),)),
        Panel("Prefix-cache hit ratio", "Prompt tokens served from the prefix cache / tokens looked up.",
              "percentunit", (Target("hit ratio", sel("prefix_cache_hit", "ratio"), who, ("prefix_cache_hit",)),)),
        Panel("Prompt and generation length", "Tokens per request: a right shift in prompts slows prefill.",
              "short", (
                  Target("prompt", sel("prompt_length_tokens", "quantile"), f"{who} prompt p{lab('quantile')}",
                         ("prompt_length_tokens",)),
                  Target("generated", sel("generation_length_tokens", "quantile"),
                         f"{who} generated p{lab('quantile')}", ("generation_length_tokens",)))),
        Panel("Pods serving", "Pods that report the model (from the running-requests gauge).", "short",
              (Target("pods", scoped(cfg, info_names()["model_pods"]), who, ("requests_running",)),)),
    ))


# ---- Pod level ------------------------------------------------------------------------------

def pod_section(cfg: Config) -> Section:
    lb = cfg.labels
    pod = lab(lb.pod)
    qvalue, qtitle = top_quantile(cfg)
    sel = lambda name, role, *m: scoped(cfg, record(cfg, POD, name, role), *m)  # noqa: E731

    def tail(name: str) -> Selector:
        return sel(name, "quantile", Matcher("quantile", qvalue))

    def outlier(name: str) -> Expr:
        """Each pod's tail latency divided by its model's median pod: 1 is typical, 2 twice as slow."""
        median = Agg("quantile", tail(name), by=lb.model_keys(), param=Num(0.5))
        return BinOp("/", tail(name), median, on=lb.model_keys(), group_left=())

    def latency(title: str, name: str) -> Panel:
        return Panel(f"{title} {qtitle} per pod", f"{title} {qtitle} of each pod.", "s",
                     (Target(qtitle, tail(name), pod, (name,)),))

    return Section("Pod level", (
        Panel("Requests per pod", "Finished requests per second on each pod: load distribution.", "reqps",
              (Target("finished", sel("requests", "rate"), pod, ("requests",)),)),
        Panel("Failed requests per pod", "Failed requests per second on each pod, by reason.", "reqps",
              (Target("failed", sel("request_errors", "rate"), f"{pod} {lab('reason')}", ("request_errors",)),)),
        Panel(f"Outliers: {qtitle} latency vs the model's median pod",
              "Each pod's tail latency divided by the median pod of its model; well above 1 is an outlier.",
              "short", (
                  Target("TTFT", outlier("ttft_seconds"), f"{pod} TTFT", ("ttft_seconds",)),
                  Target("ITL", outlier("itl_seconds"), f"{pod} ITL", ("itl_seconds",)))),
        latency("Time to first token", "ttft_seconds"),
        latency("Inter-token latency", "itl_seconds"),
        latency("End-to-end latency", "e2e_latency_seconds"),
        latency("Queue time", "queue_time_seconds"),
        Panel("Running and waiting per pod", "Batch size and queue length of each pod.", "short", (
            Target("running", sel("requests_running", "value"), f"{pod} running", ("requests_running",)),
            Target("waiting", sel("requests_waiting", "value"), f"{pod} waiting", ("requests_waiting",)))),
        Panel("KV-cache usage per pod", "KV-cache usage of each pod (its fullest engine or rank).", "percentunit",
              (Target("usage", sel("kv_cache_usage", "value"), pod, ("kv_cache_usage",)),)),
        Panel("Preemptions per pod", "Preempted or retracted requests per second on each pod.", "ops",
              (Target("preemptions", sel("preemptions", "rate"), pod, ("preemptions",)),)),
        Panel("Prefix-cache hit ratio per pod", "A pod far below its peers gets traffic without cache affinity.",
              "percentunit", (Target("hit ratio", sel("prefix_cache_hit", "ratio"), pod, ("prefix_cache_hit",)),)),
        Panel("Token throughput per pod", "Prompt and generated tokens per second on each pod.", "suffix: tok/s", (
            Target("prompt", sel("prompt_tokens", "rate"), f"{pod} prompt", ("prompt_tokens",)),
            Target("generated", sel("generation_tokens", "rate"), f"{pod} generated", ("generation_tokens",)))),
    ))


# ---- GPU per pod ----------------------------------------------------------------------------

def gpu_section(cfg: Config) -> Section:
    lb = cfg.labels
    gpu = f"{lab(lb.pod)} GPU {lab('gpu')}"
    # GPU series carry no model label: keep the GPUs of pods that serve the selected models.
    serving = scoped(cfg, info_names()["pod_model"])

    def sel(name: str, role: str) -> Expr:
        metric = record(cfg, GPU, name, role)
        # A field computed at query time is scoped by `serving` alone: its namespace and pod are relabelled
        # from dcgm-exporter's own labels, which a variable's matcher cannot reach.
        gpus = Selector(metric) if metric in schema.query_time(cfg) else scoped(cfg, metric, model=False)
        return BinOp("and", gpus, serving, on=lb.join_keys())

    def one(name: str, role: str, title: str, legend: str = "") -> Target:
        return Target(title, sel(name, role), f"{gpu} {legend}".rstrip(), (name,))

    return Section("GPU per pod", (
        Panel("GPU activity", "Graphics engine, tensor pipe, DRAM and SM activity of each GPU (0-100%).",
              "percentunit", (one("engine_active", "value", "engine", "engine"),
                              one("tensor_active", "value", "tensor pipe", "tensor"),
                              one("dram_active", "value", "DRAM", "dram"), one("sm_active", "value", "SM", "sm"))),
        Panel("GPU memory used", "Framebuffer used / total. vLLM preallocates, so flat-high is normal.",
              "percentunit", (one("fb_used", "ratio", "memory used"),)),
        Panel("GPU power", "Power draw of each GPU.", "watt", (one("power_watts", "value", "power"),)),
        Panel("GPU temperature", "Temperature of each GPU.", "celsius",
              (one("temperature_celsius", "value", "temperature"),)),
        Panel("SM clock", "SM clock of each GPU; a drop against its peers points at throttling.", "hertz",
              (Target("SM clock", sel("sm_clock_mhz", "value") * 1e6, gpu, ("sm_clock_mhz",)),)),
        Panel("GPU errors", "Last XID (a code, not a count), remapped rows, remap failure, ECC and XID counts.",
              "short", (one("xid_last", "value", "last XID", "last XID"),
                        one("remapped_rows_uncorrectable", "value", "remapped rows", "remapped"),
                        one("row_remap_failure", "value", "remap failure", "remap failed"),
                        one("ecc_dbe_errors", "rate", "ECC DBE", "ECC DBE/s"),
                        one("xid_errors", "value", "XID counts", f"XID {lab('xid')}"))),
        Panel("Throttled time", "Share of time each GPU was throttled, by reason.", "percentunit",
              (one("throttle", "rate", "throttle", lab("reason")),)),
        Panel("Clock events", "Clock-limiting events per second, by event (thermal, power cap, ...).", "ops",
              (one("clock_events", "rate", "clock events", lab("clock_event")),)),
    ))


# ---- serving surfaces: one row each, collapsed when no configured backend has it ------------------

def transfer_section(cfg: Config) -> Section:
    """Prefill/decode disaggregation: transfers are observed on both roles, queues on one each."""
    lb = cfg.labels
    who = f"{lab(lb.pod)} {lab(lb.role)}".rstrip()
    sel = lambda name, role: scoped(cfg, record(cfg, POD, name, role))  # noqa: E731
    mean = BinOp("/", sel("kv_transfer_time", "rate"), positive(sel("kv_transfers", "rate")), on=lb.pod_keys())
    return Section("Prefill/decode KV transfer", (
        Panel("KV transfers per pod", "KV-cache transfers per second (vLLM NIXL counts one per TP rank).", "ops",
              (Target("transfers", sel("kv_transfers", "rate"), who, ("kv_transfers",)),)),
        Panel("Mean KV transfer time per pod", "Seconds per transfer: rising time delays the decode pods' "
              "first token.", "s", (Target("mean", mean, who, ("kv_transfer_time", "kv_transfers")),)),
        Panel("KV transfer throughput per pod", "KV-cache bytes moved per second between prefill and decode.",
              "Bps", (Target("bytes", sel("kv_transfer_bytes", "rate"), who, ("kv_transfer_bytes",)),)),
        Panel("KV transfer failures and timeouts per pod", "Failed transfers, bootstraps or notifications by "
              "reason, and KV blocks that expired before the peer fetched them.", "ops", (
                  Target("failures", sel("kv_transfer_failures", "rate"), f"{who} {lab('reason')}",
                         ("kv_transfer_failures",)),
                  Target("timeouts", sel("kv_transfer_timeouts", "rate"), f"{who} expired",
                         ("kv_transfer_timeouts",)))),
        Panel("Prefill pods: bootstrap queue", "Prefill requests waiting to pair with a decode peer.", "short",
              (Target("bootstrap", sel("kv_bootstrap_queue", "value"), who, ("kv_bootstrap_queue",)),)),
        Panel("Decode pods: pre-allocation and transfer queues", "Decode requests waiting for KV memory, then "
              "for their KV cache to arrive.", "short", (
                  Target("pre-allocation", sel("kv_prealloc_queue", "value"), f"{who} prealloc",
                         ("kv_prealloc_queue",)),
                  Target("transfer", sel("kv_transfer_queue", "value"), f"{who} transfer", ("kv_transfer_queue",)))),
    ))


def spec_section(cfg: Config) -> Section:
    lb = cfg.labels
    pod, who = lab(lb.pod), f"{lab(lb.workload)}/{lab(lb.model)}"
    sel = lambda level, name, role: scoped(cfg, record(cfg, level, name, role))  # noqa: E731
    return Section("Speculative decoding", (
        Panel("Draft acceptance rate", "Accepted / proposed draft tokens, per model and per pod; a drop "
              "raises inter-token latency.", "percentunit", (
                  Target("model", sel(MODEL, "spec_accept_rate", "ratio"), who, ("spec_accept_rate",)),
                  Target("pod", sel(POD, "spec_accept_rate", "ratio"), pod, ("spec_accept_rate",)))),
        Panel("Mean acceptance length per pod", "Tokens emitted per verify step (1 + accepted per draft).",
              "short", (Target("length", sel(POD, "spec_accept_length", "ratio"), pod, ("spec_accept_length",)),)),
        Panel("Draft and accepted tokens per pod", "Draft tokens proposed and accepted per second.",
              "suffix: tok/s", (
                  Target("draft", sel(POD, "spec_draft_tokens", "rate"), f"{pod} draft", ("spec_draft_tokens",)),
                  Target("accepted", sel(POD, "spec_accepted_tokens", "rate"), f"{pod} accepted",
                         ("spec_accepted_tokens",)))),
    ))


def lora_section(cfg: Config) -> Section:
    pod = lab(cfg.labels.pod)
    sel = lambda name: scoped(cfg, record(cfg, POD, name, "value"))  # noqa: E731
    return Section("LoRA adapters", (
        Panel("LoRA adapters per pod", "Adapters in use, adapters that waiting requests need, and adapter "
              "slots; waiting while in use = slots means requests queue for an adapter slot.", "short", (
                  Target("running", sel("lora_adapters_running"), f"{pod} running", ("lora_adapters_running",)),
                  Target("waiting", sel("lora_adapters_waiting"), f"{pod} waiting", ("lora_adapters_waiting",)),
                  Target("slots", sel("lora_adapters_max"), f"{pod} slots", ("lora_adapters_max",)))),
    ))


def sections(cfg: Config) -> tuple[tuple[str, Section], ...]:
    """(tier, section) in dashboard order, records computed at query time inlined into the panels."""
    later = schema.query_time(cfg)

    def computed(s: Section) -> Section:
        return replace(s, panels=tuple(replace(p, targets=tuple(replace(t, expr=inline(t.expr, later))
                                                                for t in p.targets)) for p in s.panels))
    return tuple((tier, computed(s)) for tier, s in (
        (MODEL, model_section(cfg)), (POD, pod_section(cfg)), (GPU, gpu_section(cfg)),
        (POD, transfer_section(cfg)), (POD, spec_section(cfg)), (POD, lora_section(cfg))))


def section_available(cfg: Config, tier: str, section: Section) -> bool:
    """Whether any configured backend (dcgm-exporter for GPU rows) can fill a panel of the row."""
    backends = (schema.GPU_SOURCE,) if tier == GPU else cfg.backends
    return any(target_support(b, t).available for b in backends for p in section.panels for t in p.targets)


# ---- Grafana JSON -----------------------------------------------------------------------------

def variables_json(cfg: Config) -> list[dict]:
    """A data-source picker, then one multi-value variable per label; each narrows the next."""
    out: list[dict] = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                        "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}]
    names = variable_names(cfg)
    for i, name in enumerate(names):
        parent = Selector(info_names()["model_pods"], tuple(Matcher(n, f"${n}", "=~") for n in names[:i]))
        query = f"label_values({check(parent)}, {name})"
        out.append({"name": name, "label": name, "type": "query", "datasource": DATASOURCE, "query": query,
                    "definition": query, "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1, "regex": "", "hide": 0, "options": []})
    return out


def alert_annotation(cfg: Config) -> dict:
    """Firing inferwatch alerts of the selected namespaces, as annotations on every panel."""
    outer = [n for n in variable_names(cfg) if n in (cfg.labels.cluster, cfg.labels.namespace)]
    firing = Selector("ALERTS", (Matcher("alertstate", "firing"), Matcher(SOURCE_LABEL, SOURCE))
                      + tuple(Matcher(n, f"${n}", "=~") for n in outer))
    lb = cfg.labels
    return {"name": "inferwatch alerts", "datasource": DATASOURCE, "enable": True, "iconColor": "red",
            "expr": check(firing), "step": "60s", "useValueForTime": False, "titleFormat": "{{alertname}}",
            "textFormat": f"{{{{severity}}}} {lab(lb.namespace)}/{lab(lb.workload)} {lab(lb.model)} {lab(lb.pod)}",
            "tagKeys": "severity,alertname"}


def panel_json(cfg: Config, panel: Panel, tier: str, pid: int, x: int, y: int) -> dict:
    targets = [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": check(t.expr),
                "legendFormat": t.legend, "range": True} for i, t in enumerate(panel.targets)]
    return {"id": pid, "type": "timeseries", "title": panel.title,
            "description": f"{panel.help}\n\n{support_text(cfg, panel, tier)}",
            "datasource": DATASOURCE, "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": panel.unit, "min": 0}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": targets}


def dashboard_json(cfg: Config) -> dict:
    panels: list[dict] = []
    y, pid = 0, 1
    for tier, section in sections(cfg):
        # A row no configured backend can fill is collapsed: its panels are kept inside the row object.
        shown = section_available(cfg, tier, section)
        row = {"id": pid, "type": "row", "title": section.title, "collapsed": not shown,
               "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        panels.append(row)
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(section.panels):
            body = panel_json(cfg, panel, tier, pid, (i % COLUMNS) * WIDTH, y + (i // COLUMNS) * HEIGHT)
            (panels if shown else row["panels"]).append(body)
            pid += 1
        y += -(-len(section.panels) // COLUMNS) * HEIGHT if shown else 0
    d = cfg.dashboard
    return {"uid": d.uid, "title": d.title, "tags": ["inferwatch", "llm-inference"],
            "description": "Generated by `inferwatch generate`: model, pod and GPU tiers of LLM inference.",
            "editable": True, "graphTooltip": 1, "schemaVersion": 39, "refresh": "1m",
            "time": {"from": "now-3h", "to": "now"}, "timezone": "browser",
            "templating": {"list": variables_json(cfg)},
            "annotations": {"list": [alert_annotation(cfg)]},
            "panels": panels}


def config_map(cfg: Config, body: str) -> str:
    d = cfg.dashboard
    meta: dict = {"name": d.uid, "namespace": d.namespace,
                  "labels": {"app.kubernetes.io/name": "inferwatch", **dict(sorted(d.labels.items()))}}
    if d.folder:
        meta["annotations"] = {"grafana_folder": d.folder}
    return HEADER + dump_yaml({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                               "data": {f"{d.uid}.json": body}})


def artifacts(cfg: Config) -> dict[str, str]:
    """Producer for `inferwatch generate`: the importable JSON and the sidecar ConfigMap."""
    body = json.dumps(dashboard_json(cfg), indent=2, ensure_ascii=False) + "\n"
    return {f"grafana/{cfg.dashboard.uid}.json": body,
            f"kubernetes/grafana-dashboard-{cfg.dashboard.uid}.yaml": config_map(cfg, body)}
