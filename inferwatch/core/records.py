"""Recording rules that normalize every backend into one schema, per tier.

Groups, evaluated in this order of dependency:
  inferwatch-<engine>     pod tier from one engine's raw series (vllm, sglang; -pd adds transfer signals)
  inferwatch-pod          pod-tier ratios, quantiles and means, from the normalized pod series
  inferwatch-model        model tier: a model's pods summed (prefill and decode kept apart by role)
  inferwatch-model-histograms  every `recording.histogram_interval`: the model tier's latency histograms
                          (bucket, sum and count rates, quantiles, means)
  inferwatch-gpu-info     every `gpu.info_interval`: `llm_gpu:info`, one series per GPU naming the
                          inference pod that uses it, built on `llm_gpu:owner:info`, which outlives the
                          engine while the pod holds the GPU
  inferwatch-gpu          dcgm-exporter fields per GPU id (`GPU_BY_ID`) and the fault conditions of the
                          GPUs past a floor (`gpu_high`); every field with its pod's labels (joined
                          through `llm_gpu:info`) is computed at query time

Not every record is written: those that cost a series per bucket or per GPU field and that no alert
reads over time are computed where they are read (`query_time_names`): the rule files inline them into
the records and alerts that read them, the dashboard and `diagnose` into their queries (core/schema.py).
"""
from __future__ import annotations

from dataclasses import replace

from .catalog import Catalog, Source, load_catalog, parent
from .config import Config, duration_seconds
from .promql import (Agg, BinOp, Call, Expr, Matcher, Num, Selector, agg, any_of, histogram_quantile, inline,
                     label_replace, aggregate_once, over_time, positive, rate, set_label)
from .rules import RecordingRule, RuleGroup, record_index
from .signals import GPU, MODEL, POD, SIGNALS, Signal, info_names, record_names, signal

HIST_PARTS = ("bucket", "sum", "count")


# ---- one source -> one pod-tier (or GPU-tier) expression -------------------------------------

def source_expr(src: Source, sig: Signal, keys: tuple[str, ...], window: str, part: str | None = None,
                set_labels: bool = True) -> Expr:
    """Aggregate one catalog source to `keys` (+ the source's kept labels, + `le` for buckets).

    Ranks of one engine are combined as the collector says: replicated ranks by max, partitions by
    sum."""
    suffix = f"_{part}" if part else ""
    sel = src.selector(suffix)
    by = keys + src.keep + (("le",) if part == "bucket" else ())
    if src.kind in ("label_count", "label_value"):
        return label_number(src, keys)
    if src.kind in ("counter", "histogram"):
        inner: Expr = rate(sel, window)
        op = "sum"
    elif src.kind == "gauge_events":
        inner = over_time("max", sel, window) / Num(duration_seconds(window))
        op = "sum"
    elif sig.kind == "ratio":
        inner = over_time("avg", sel, window)
        op = "max"
    else:
        inner = sel
        op = sig.agg
    if src.collector.replicated:
        inner = agg("max", inner, by + src.collector.partition)
    expr: Expr = agg(op, inner, by)
    if src.scale is not None:
        expr = expr * src.scale
    for name, value in src.set_labels if set_labels else ():
        expr = set_label(expr, name, value)
    return expr


LABEL_NUMBERS = 32  # label_count / label_value read numbers 0..32 (adapters, LoRA slots)
NUMBER_BASE = 64    # > LABEL_NUMBERS: a series' number rides in the lowest base-64 digit of its scaled value


def number_matchers(src: Source) -> list[tuple[int, Matcher]]:
    """Each number 0..LABEL_NUMBERS with the matcher on `src.label` that selects the series holding it:
    the number itself (label_value) or that many comma-joined names (label_count)."""
    out = []
    for k in range(LABEL_NUMBERS + 1):
        if src.kind == "label_value":
            pattern = str(k)
        else:
            pattern = "" if k == 0 else "[^,]+" + "(,[^,]+)" * (k - 1)
        out.append((k, Matcher(src.label, pattern, "=~")))
    return out


def label_number(src: Source, keys: tuple[str, ...]) -> Expr:
    """The number an info label of the newest series per target holds: a count of comma-joined names
    (label_count) or the label's number (label_value). PromQL cannot turn a label into a value, so each
    possible number is one matcher; its series carry the number in the lowest digit of their value
    (a timestamp, in whole milliseconds, times NUMBER_BASE), and one max per target keeps the newest
    series' number. Every series is selected once: comparing each number's series with the target's
    newest selected all of them once per number (33 times), and a LoRA engine keeps a series for every
    adapter set it has run (bench/bench_lora.py). Seconds since 1970 in milliseconds, times 64, stay
    exact in a float64."""
    sel = src.selector()
    branches = [Call("floor", (sel.with_matchers(m) * 1000,)) * NUMBER_BASE + k for k, m in number_matchers(src)]
    return BinOp("%", agg("max", any_of(branches), keys), Num(NUMBER_BASE))


# ---- pod tier, one group per engine -------------------------------------------------------

def engine_sources(cfg: Config, cat: Catalog, name: str) -> tuple[Source, ...]:
    """A signal's recorded sources, limited to engine targets: only series scraped by the inference
    PodMonitor carry the workload label (generate/scrape.py), so another job reusing the engine's names
    (a router, a gateway) never reaches the pod tier; the catalog's `targets:` exclude the rest."""
    need = Matcher(cfg.labels.workload, ".+", "=~")
    return tuple(replace(s, target_match=s.target_match + (need,)) for s in cat.series_of(name))


def engine_group(cfg: Config, backend: str, base: Catalog | None = None) -> RuleGroup:
    """Pod-tier records for one backend. A -pd backend records only what it adds to its parent."""
    cat = load_catalog(backend)
    lb, w = cfg.labels, cfg.recording.rate_window
    fill = lambda e: label_replace(e, lb.backend, backend, lb.backend, "")  # noqa: E731 - pods without the label
    names = info_names()
    rules: list[RecordingRule] = []
    own = [s for s in SIGNALS if s.tier == "pod" and cat.of(s.name)
           and (base is None or cat.of(s.name) != base.of(s.name))]
    if base is None:
        served = engine_models(cfg, cat)
        rules.append(RecordingRule(names["pod_model"], fill(served)))
        rules.append(RecordingRule(names["pod"], Agg("group", fill(served), by=lb.pod_identity())))
    for sig in own:
        for role, expr in pod_signal_exprs(cfg, cat, sig).items():
            rules.append(RecordingRule(record_names(sig, POD, w)[role], fill(expr)))
    return RuleGroup(f"inferwatch-{backend}", cfg.recording.interval, tuple(rules), f"inferwatch-{backend}")


def engine_models(cfg: Config, cat: Catalog) -> Expr:
    """One series per (pod, model) an engine serves, from its own running-requests gauge."""
    keys, w = cfg.labels.pod_keys(), cfg.recording.rate_window
    running = [source_expr(s, signal("requests_running"), keys, w) for s in engine_sources(cfg, cat, "requests_running")]
    return Agg("group", any_of(running), by=keys)


def pod_signal_exprs(cfg: Config, cat: Catalog, sig: Signal, window: str | None = None) -> dict[str, Expr]:
    """The raw-series expression of each record of a pod-tier signal, keyed by record role (rates over
    `window`, the recording rate window unless a shorter SLI window asks for its own)."""
    lb, w = cfg.labels, window or cfg.recording.rate_window
    srcs = engine_sources(cfg, cat, sig.name)
    if sig.kind == "histogram":
        return {part: any_of([source_expr(s, sig, lb.pod_keys(), w, part) for s in srcs]) for part in HIST_PARTS}
    if sig.kind == "ratio":
        return {}  # derived in the inferwatch-pod group; direct fallbacks are added there
    role = "rate" if sig.kind == "counter" else "value"
    exprs = []
    for s in srcs:
        if s.per_model:
            exprs.append(source_expr(s, sig, lb.pod_keys(), w))
        else:
            # e.g. HTTP 5xx: no model_name on the series; spread to each model this engine's pod serves.
            per_pod = source_expr(s, sig, lb.pod_identity(), w, set_labels=False)
            joined = BinOp("*", per_pod, engine_models(cfg, cat), on=lb.join_keys(), group_right=())
            for name, value in s.set_labels:
                joined = set_label(joined, name, value)
            exprs.append(joined)
    return {role: any_of(exprs)}


# ---- pod tier, engine-agnostic derived records ---------------------------------------------

def derived_pod_group(cfg: Config, catalogs: list[Catalog]) -> RuleGroup:
    rules: list[RecordingRule] = []
    rules += _ratio_rules(cfg, POD, catalogs)
    rules += _arrival_rules(cfg, catalogs)
    rules += _histogram_summaries(cfg, POD)
    return RuleGroup("inferwatch-pod", cfg.recording.interval, tuple(rules), "inferwatch-pod")


# Derived ratios: (numerator, denominator, offset added). A catalog may give a direct gauge fallback.
# Pod-tier ratios computed from two counters' records: name -> (numerator, denominator, offset).
RATIOS = {s.name: (*s.inputs, s.offset) for s in SIGNALS if s.derived and s.tier == "pod" and s.kind == "ratio"}


def _ratio_rules(cfg: Config, level: str, catalogs: list[Catalog]) -> list[RecordingRule]:
    w, lb = cfg.recording.rate_window, cfg.labels
    rules = []
    for name, (num, den, offset) in RATIOS.items():
        ratio = signal(name)
        if not any(c.of(name) or (c.of(num) and c.of(den)) for c in catalogs):
            continue
        derived: Expr = (Selector(record_names(signal(num), level, w)["rate"])
                         / positive(Selector(record_names(signal(den), level, w)["rate"])))
        exprs: list[Expr] = [derived + offset if offset else derived]
        if level == POD:
            for cat in catalogs:
                for s in engine_sources(cfg, cat, name):
                    fallback = source_expr(s, ratio, lb.pod_keys(), w)
                    exprs.append(label_replace(fallback, lb.backend, cat.engine, lb.backend, ""))
        else:
            # Pods that only expose a gauge: average their ratios (no counters to sum).
            exprs.append(agg("avg", Selector(record_names(ratio, POD, w)["ratio"]), lb.model_keys()))
        rules.append(RecordingRule(record_names(ratio, level, w)["ratio"], any_of(exprs)))
    return rules


def _arrival_rules(cfg: Config, catalogs: list[Catalog]) -> list[RecordingRule]:
    """Arrivals by conservation: every request that arrived either finished (any reason, aborts included)
    or is still running or waiting. Engines count requests when they finish, and a full batch finishes no
    faster however many arrive, so a surge shows in the finished rate only once clients time out."""
    sig = signal("requests_arrived")
    finished, running, waiting = sig.inputs
    if not any(all(c.of(i) for i in sig.inputs) for c in catalogs):
        return []
    w = cfg.recording.rate_window
    in_system = [Call("deriv", (Selector(record_names(signal(g), POD, w)["value"]).over(w),))
                 for g in (running, waiting)]
    arrived = Selector(record_names(signal(finished), POD, w)["rate"]) + in_system[0] + in_system[1]
    return [RecordingRule(record_names(sig, POD, w)["rate"], Call("clamp_min", (arrived, Num(0))))]


def _histogram_summaries(cfg: Config, level: str) -> list[RecordingRule]:
    """Quantiles (a `quantile` label per configured quantile) and means from recorded bucket rates."""
    w = cfg.recording.rate_window
    rules = []
    for sig in SIGNALS:
        if sig.kind != "histogram":
            continue
        n = record_names(sig, level, w)
        for q in cfg.recording.quantiles:
            # `>= 0` drops the NaN that histogram_quantile returns for a window without requests.
            rules.append(RecordingRule(n["quantile"], histogram_quantile(q, Selector(n["bucket"])) >= 0,
                                       {"quantile": _qlabel(q)}))
        rules.append(RecordingRule(n["mean"], Selector(n["sum"]) / positive(Selector(n["count"]))))
    return rules


def _qlabel(q: float) -> str:
    return repr(float(q))


# ---- model tier --------------------------------------------------------------------------

def model_groups(cfg: Config, catalogs: list[Catalog]) -> list[RuleGroup]:
    """The model tier: counters and gauges every cycle; the histograms' bucket, sum and count rates and
    their quantiles and means every `recording.histogram_interval` (at most every cycle), in a group of
    their own."""
    lb, w = cfg.labels, cfg.recording.rate_window
    keys = lb.model_keys()
    names = info_names()
    rules = [RecordingRule(names["model_pods"], agg("count", Selector(names["pod_model"]), keys))]
    histograms: list[RecordingRule] = []
    for sig in SIGNALS:
        if sig.tier != "pod" or sig.kind == "ratio" or not any(c.of(sig.name) for c in catalogs):
            continue
        pod, model = record_names(sig, POD, w), record_names(sig, MODEL, w)
        extra = _kept_labels(sig, catalogs)
        if sig.kind == "histogram":
            histograms.append(RecordingRule(model["bucket"], agg("sum", Selector(pod["bucket"]), keys + ("le",))))
            for part in ("sum", "count"):
                histograms.append(RecordingRule(model[part], agg("sum", Selector(pod[part]), keys)))
        elif sig.kind == "counter":
            rules.append(RecordingRule(model["rate"], agg("sum", Selector(pod["rate"]), keys + extra)))
        else:
            rules.append(RecordingRule(model["value"], agg(sig.agg, Selector(pod["value"]), keys + extra)))
            if "avg" in model:
                rules.append(RecordingRule(model["avg"], agg("avg", Selector(pod["value"]), keys + extra)))
    rules += _ratio_rules(cfg, MODEL, catalogs)
    histograms += _histogram_summaries(cfg, MODEL)
    every = max(cfg.recording.interval, cfg.recording.histogram_interval, key=duration_seconds)
    return [RuleGroup("inferwatch-model", cfg.recording.interval, tuple(rules), "inferwatch-model"),
            RuleGroup("inferwatch-model-histograms", every, tuple(histograms), "inferwatch-model-histograms")]


def _kept_labels(sig: Signal, catalogs: list[Catalog]) -> tuple[str, ...]:
    """Labels a signal keeps below the pod: its own (`reason`) and those its sources keep."""
    kept = list(sig.keep)
    for c in catalogs:
        for s in c.of(sig.name):
            kept += [k for k in s.keep if k not in kept]
    return tuple(dict.fromkeys(kept))


# ---- GPU tier ----------------------------------------------------------------------------

def gpu_relabel(cfg: Config):
    """Rewrites dcgm-exporter pod/namespace/hostname labels into the configured label names.
    Listed labels other than the target override it, the first listed last (so it wins)."""
    plan = [(cfg.labels.namespace, cfg.gpu.namespace_labels), (cfg.labels.pod, cfg.gpu.pod_labels),
            ("hostname", cfg.gpu.hostname_labels)]

    def apply(expr: Expr) -> Expr:
        for target, sources in plan:
            for src in reversed(sources):
                if src != target:
                    expr = label_replace(expr, target, "$1", src, "(.+)")
        return expr
    return apply


def instance_rules(cfg: Config) -> list[RecordingRule]:
    """Which serving instance every scraped pod belongs to, from `up`: it carries the scrape-time instance
    label (generate/scrape.py) even for worker pods that export nothing."""
    lb, names = cfg.labels, info_names()
    jk = lb.join_keys()
    scraped = Selector("up", (Matcher(lb.workload, ".+", "=~"), Matcher(lb.instance, ".+", "=~")))
    return [RecordingRule(names["pod_instance"], agg("group", scraped, jk + (lb.instance,)))]


def gpu_holders(cfg: Config) -> Expr:
    """One row per pod that may hold GPUs, naming the model it serves (workload, backend, role): an
    engine pod from `llm_gpu:owner:info`; a pod that exports no engine metrics (a multi-node worker) from
    the engine pod of its instance (a LeaderWorkerSet leader is named like its group, `<name>-<index>`,
    the instance label), named in `engine_pod`, the worker itself in `gpu_pod`. Engine rows win, so the
    per-GPU join stays many-to-one. Per pod, so the GPUs are read once (`gpu_info`). Reads
    `llm_pod:instance:info`, which diagnose leaves as is on raw series: absent there, the worker rows are
    pruned (diagnose/planner.py)."""
    lb, names = cfg.labels, info_names()
    jk = lb.join_keys()
    served = (lb.workload, lb.backend, lb.role)
    engines = agg("group", Selector(names["gpu_owner"]), jk + served)
    workers = label_replace(BinOp("unless", Selector(names["pod_instance"]), Selector(names["pod"]), on=jk),
                            "engine_pod", "$1", lb.instance, "(.*)")
    engine_info = label_replace(Selector(names["pod"]), "engine_pod", "$1", lb.pod, "(.*)")
    on_engine = tuple(k for k in jk if k != lb.pod) + ("engine_pod",)
    moved = label_replace(BinOp("*", workers, engine_info, on=on_engine, group_left=served),
                          "gpu_pod", "$1", lb.pod, "(.*)")
    return BinOp("or", engines, moved, on=jk)


def gpu_id(cfg: Config) -> tuple[str, ...]:
    """dcgm-exporter's own labels naming one GPU (or MIG instance), with the cluster when configured: a
    GPU field joins `llm_gpu:info` on them, so only the info pays for relabelling pod and namespace."""
    return tuple(k for k in (cfg.labels.cluster, "UUID", "GPU_I_ID") if k)


# The field that tells a GPU exists: in every counters CSV dcgm-exporter ships (default and DCP), and read
# alone because the inventory reads every GPU each cycle (an `or` of several fields cost four times as
# much: docs/benchmarks.md). A custom CSV must keep it (docs/alerts.md).
GPU_PRESENCE = "temperature_celsius"


def gpus_present(cfg: Config, keys: tuple[str, ...]) -> Expr:
    """One series per `keys` (a GPU, or a pod holding GPUs) dcgm-exporter reports (`gpu_keyed`)."""
    return gpu_keyed(cfg, gpu_presence(), keys, "group")


def gpu_presence() -> Expr:
    """The dcgm-exporter field every GPU reports (GPU_PRESENCE), under any of its names."""
    return any_of([s.selector() for s in load_catalog("dcgm").of(GPU_PRESENCE)])


def gpu_keyed(cfg: Config, value: Expr, keys: tuple[str, ...], op: str) -> Expr:
    """`value` (series with dcgm-exporter's own labels) aggregated by `op` per `keys`, with the configured
    pod/namespace/hostname labels: grouped on the exporter's own labels first, so each label_replace runs
    once per GPU or pod, not once per field and GPU."""
    g = cfg.gpu
    raw_keys = tuple(dict.fromkeys(keys + g.namespace_labels + g.pod_labels + g.hostname_labels))
    return agg(op, gpu_relabel(cfg)(agg(op, value, raw_keys)), keys)


def gpu_owner(cfg: Config) -> RecordingRule:
    """Which model (workload, backend, role) each pod holding a GPU serves, remembered past the engine.

    The engine's own series say what a pod serves; they vanish when the engine crashes or hangs, which is
    exactly when XID, ECC and throttle alerts matter. dcgm-exporter keeps attributing the GPU to the pod
    (kubelet pod-resources) for as long as the pod exists, so the last known mapping is carried forward
    (`last_over_time` of this record's own output, bridging gaps up to `gpu.owner_memory`) while a GPU
    still names the pod, and dropped once no GPU does (pod deleted, GPU freed)."""
    jk = cfg.labels.join_keys()
    name = info_names()["gpu_owner"]
    now = Selector(info_names()["pod_model"])
    held = gpus_present(cfg, jk)
    before = over_time("last", Selector(name), cfg.gpu.owner_memory).unless(now, on=jk).and_(held, on=jk)
    return RecordingRule(name, now.or_(before))


def gpu_info(cfg: Config) -> RecordingRule:
    """One series per GPU naming the pod, workload, backend and role using it: the labels every GPU field
    gets by joining it on `gpu_id`."""
    return RecordingRule(info_names()["gpu"], gpu_attributed(cfg, gpu_presence(), "group"))


def gpu_attributed(cfg: Config, value: Expr, op: str = "max") -> Expr:
    """`value` (dcgm-exporter series) aggregated by `op` per GPU, labelled with the pod, workload, backend
    and role using the GPU (a multi-node worker's GPUs under their engine pod, the worker in `gpu_pod`:
    `gpu_holders`). `llm_gpu:info` is this for every GPU; an alert calls it on the series that pass its
    test (`gpu_past`), so it groups and joins a handful of GPUs instead of every GPU of the fleet."""
    lb = cfg.labels
    gpus = gpu_keyed(cfg, value, tuple(dict.fromkeys(lb.gpu_keys() + gpu_id(cfg))), op)
    joined = BinOp("*", gpus, gpu_holders(cfg), on=lb.join_keys(),
                   group_left=(lb.workload, lb.backend, lb.role, "engine_pod", "gpu_pod", lb.instance))
    moved = label_replace(joined, lb.pod, "$1", "engine_pod", "(.+)")
    return label_replace(moved, "engine_pod", "", "", "")


def gpu_past(cfg: Config, name: str, floor: float) -> Expr:
    """The raw series of a GPU signal above `floor`, tested one by one: no aggregation, join or
    label_replace over every GPU before the test (what made the GPU alerts grow faster than the fleet:
    docs/benchmarks.md). A fallback source (GPU_UTIL after GR_ENGINE_ACTIVE) counts only on GPUs without
    the source before it; sources that set a label (throttle reasons) are parts and all count. A derived
    signal (the framebuffer ratio `used / (used + free)`) is tested as `free / used < 1 / floor - 1`, the
    same condition with one vector match, and its ratio, `1 / (1 + free / used)`, computed for the GPUs
    that pass only (an empty GPU or one reporting 0 of 0 never passes). Duplicate series of one GPU (two
    exporters) are tested one by one, where the records aggregate them first."""
    sig = signal(name)
    if sig.derived:
        used, free = (any_of([gpu_series(s, cfg.recording.rate_window) for s in load_catalog("dcgm").of(i)])
                      for i in sig.inputs)
        if floor <= 0:
            return Num(1) / (Num(1) + free / used) > floor
        return Num(1) / (Num(1) + BinOp("<", free / used, Num(1 / floor - 1)))
    srcs = load_catalog("dcgm").of(name)
    parts = []
    for i, s in enumerate(srcs):
        part = gpu_series(s, cfg.recording.rate_window) > floor
        for before in srcs[:i]:
            if before.set_labels == s.set_labels:
                part = part.unless(before.selector(), on=gpu_id(cfg))
        parts.append(part)
    return any_of(parts)


def gpu_series(src: Source, window: str) -> Expr:
    """One dcgm-exporter source per series, in its signal's unit: a counter's rate, a gauge as is."""
    expr: Expr = rate(src.selector(), window) if src.kind == "counter" else src.selector()
    return expr * src.scale if src.scale is not None else expr


def gpu_value(cfg: Config, sig: Signal) -> Expr:
    """A dcgm-exporter field per GPU, keyed by `gpu_id` only; a derived field (the framebuffer ratio) is
    computed on the raw fields."""
    ids, w = gpu_id(cfg), cfg.recording.rate_window

    def raw(name: str) -> Expr:
        return any_of([source_expr(s, signal(name), ids, w) for s in load_catalog("dcgm").of(name)])
    if sig.derived:
        used, free = (raw(i) for i in sig.inputs)
        return used / positive(used + free)
    return raw(sig.name)


def gpu_join(cfg: Config, value: Expr, pods: Expr | None = None) -> Expr:
    """`value` (keyed by `gpu_id`) labelled with its GPU's pod and model from `llm_gpu:info`. A filter on
    the value may come before or after: `llm_gpu:info` is 1, so the join keeps the value either way, and
    filtering first labels only the GPUs that pass (what alerts do). `pods` (series keyed by the join
    keys) keeps only their pods' GPUs, filtering `llm_gpu:info` before the join (a handful of GPUs to
    match instead of every GPU)."""
    lb, ids = cfg.labels, gpu_id(cfg)
    labels = tuple(k for k in dict.fromkeys(lb.gpu_keys() + (lb.workload, lb.backend, lb.role, "gpu_pod",
                                                            lb.instance)) if k not in ids)
    info: Expr = Selector(info_names()["gpu"])
    if pods is not None:
        info = info.and_(pods, on=lb.join_keys())
    return BinOp("*", value, info, on=ids, group_left=labels)


def gpu_floors(cfg: Config) -> dict[str, float]:
    """GPU signals a fault alert tests and the diagnosis screens every GPU for, each with the floor past
    which its raw series are written (`gpu_high`): the lower of the alert's and the diagnosis' thresholds
    (diagnose/graph.py tests the hardware counts above 0), so each still sees every value it tests."""
    ratio = min(cfg.alerts.gpu_fb_used_ratio, cfg.diagnose.thresholds.fb_used_ratio)
    floors = {"xid_last": 0.0, "remapped_rows_uncorrectable": 0.0, "row_remap_failure": 0.0,
              "ecc_dbe_errors": 0.0, "fb_used": ratio}
    dcgm = load_catalog("dcgm")
    return {n: f for n, f in floors.items() if all(dcgm.of(i) for i in signal(n).inputs or (n,))}


def high_name(name: str) -> str:
    """The sparse record of a GPU signal's raw series past its floor (`gpu_high`)."""
    return f"{GPU}:{name}:high"


def gpu_high(cfg: Config) -> list[RecordingRule]:
    """Each `gpu_floors` signal's raw series (dcgm-exporter's labels, tested one by one: `gpu_past`)
    where they are past the floor: no series on a healthy fleet, a handful during a fault. The fault
    alerts and the diagnosis' GPU screens read these instead of a raw field of every GPU (40,000 at 5,000
    pods: docs/benchmarks.md); the records are written once per cycle, so a value that lasts less than
    one `recording.interval` may be missed. Written beside the dense GPU records (`GPU_BY_ID`), which
    tell a reader that no series here means no GPU past the floor, not rules missing."""
    return [RecordingRule(high_name(n), gpu_past(cfg, n, f)) for n, f in gpu_floors(cfg).items()]


def gpu_groups(cfg: Config) -> list[RuleGroup]:
    """The GPU -> pod -> model mapping every `gpu.info_interval`, and the GPU fields joined to it and the
    sparse fault records every cycle."""
    w = cfg.recording.rate_window
    mapping = RuleGroup("inferwatch-gpu-info", cfg.gpu.info_interval, (gpu_owner(cfg), gpu_info(cfg)),
                        "inferwatch-gpu-info")
    rules = instance_rules(cfg)
    for sig in SIGNALS:
        if sig.tier == "gpu":
            role = {"counter": "rate", "ratio": "ratio"}.get(sig.kind, "value")
            value = gpu_value(cfg, sig)
            if sig.name in GPU_BY_ID:
                rules.append(RecordingRule(id_name(sig), value))
                value = Selector(id_name(sig))
            rules.append(RecordingRule(record_names(sig, GPU, w)[role], gpu_join(cfg, value)))
    rules += gpu_high(cfg)
    return [mapping, RuleGroup("inferwatch-gpu", cfg.recording.interval, tuple(rules), "inferwatch-gpu")]


# ---- all recording groups ----------------------------------------------------------------

def layered_groups(cfg: Config) -> list[RuleGroup]:
    """Every record of the schema, tier on tier, including those computed at query time."""
    engines = sorted({parent(b) for b in cfg.backends})
    catalogs = [load_catalog(b) for b in engines]
    groups = [engine_group(cfg, e) for e in engines]
    for b in sorted(b for b in cfg.backends if b.endswith("-pd")):
        groups.append(engine_group(cfg, b, base=load_catalog(parent(b))))
    groups = [g for g in groups if g.rules]
    pd = [load_catalog(b) for b in cfg.backends if b.endswith("-pd")]
    groups.append(derived_pod_group(cfg, catalogs))
    groups += model_groups(cfg, catalogs + pd)
    if cfg.gpu.enabled:
        groups += gpu_groups(cfg)
    return groups


# GPU fields written once per GPU, keyed by `gpu_id` alone (`id_name`): the clock, which an alert compares
# with its hour (1h of raw samples at every evaluation cost more than the record), and engine activity,
# which two alerts test (read once, where each alert read GR_ENGINE_ACTIVE and its GPU_UTIL fallback).
# Their series with the pod and model labels join them to `llm_gpu:info` where read (query time): an
# alert joins only the GPUs that pass.
GPU_BY_ID = ("sm_clock_mhz", "engine_active")


def id_name(sig: Signal) -> str:
    """The record of a GPU field per GPU (`gpu_id` labels only): `llm_gpu_id:<signal>:<aggregation>`."""
    return f"{GPU}_id:{sig.name}:{sig.agg}"


def query_time_names(cfg: Config) -> frozenset[str]:
    """Records computed where they are read instead of written. A histogram costs a series per bucket
    and pod: only `recording.model_histograms` are written, at the model tier (what latency SLOs read over
    hours), summed straight from the engine's buckets; pod quantiles and means, and the other histograms,
    are computed by the panel, alert or diagnosis that reads them, scoped to one model or pod. A GPU field
    costs a series per GPU: alerts and panels join the raw field (or its `GPU_BY_ID` record) to
    `llm_gpu:info` where they read it."""
    w, kept = cfg.recording.rate_window, cfg.recording.model_histograms
    names = [n for s in SIGNALS if s.kind == "histogram" for level in (POD, MODEL)
             if level == POD or s.name not in kept for n in record_names(s, level, w).values()]
    names += [n for s in SIGNALS if s.tier == "gpu" for n in record_names(s, GPU, w).values()]
    return frozenset(names)


def query_time_index(cfg: Config) -> dict[str, list[tuple[dict[str, str], Expr]]]:
    """Query-time record name -> its (labels, expression) rules, for `promql.inline`."""
    later = query_time_names(cfg)
    return {k: v for k, v in record_index(layered_groups(cfg)).items() if k in later}


def recording_groups(cfg: Config) -> list[RuleGroup]:
    """The groups written to rule files: every record but the query-time ones, inlined where read."""
    later = query_time_index(cfg)
    groups = []
    for g in layered_groups(cfg):
        rules = tuple(replace(r, expr=aggregate_once(inline(r.expr, later))) for r in g.rules if r.record not in later)
        if rules:
            groups.append(replace(g, rules=rules))
    return groups
