"""Alerting rules for every tier, written once on the normalized records (so they hold for every backend).

- model tier (symptoms, page): SLO burn rates (`slo.py`) and a model that stopped serving;
- pod tier (causes, never page by default): queue backlog, KV-cache saturation, preemption storm,
  prefix-cache collapse, load imbalance, target down, restarts, failing prefill/decode KV transfers,
  LoRA adapter slots exhausted, a speculative-decoding acceptance drop;
- GPU tier (causes): XID, ECC / row remap, throttling, framebuffer full, compute saturation, and an idle
  GPU while requests queue (a host-bound engine).

Every alert carries the label contract (`source`, `severity`, `tier`, identity labels from `cfg.labels`)
and `summary` / `description` / `runbook_url`. Each `Alert` also holds its runbook text and the signals it
reads, from which the runbooks and the backend support matrix are generated.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from . import slo
from ..core.config import Config, ConfigError
from ..core.failures import BY_ALERT, SGLANG_KV, VLLM_KV, FailureMode
from ..core.labels import SEVERITIES, contract
from ..core.promql import (Agg, BinOp, Call, Expr, Matcher, Num, Selector, agg, any_of, inline, label_replace, number,
                           over_time, positive, sift, transform)
from ..core.rules import AlertingRule, RuleGroup
from ..core.records import gpu_attributed, gpu_floors, gpu_join, gpu_past, gpu_value, high_name, id_name
from ..core.schema import query_time
from ..core.signals import MODEL, POD, info_names, record_names, signal



@dataclass(frozen=True)
class Alert:
    """One alert name: how to build its rule(s) and what its runbook says."""
    name: str
    tier: str  # model | pod | gpu
    severity: str
    for_: str
    summary: str
    meaning: str
    needs: tuple[tuple[str, ...], ...]  # all of these groups, any signal of a group (support matrix)
    causes: tuple[str, ...]
    # (expr, description[, static labels]) per rule; None for the SLO burn alert (`slo.burn_rules`)
    build: Callable[[Config], list[tuple]] | None = field(repr=False)
    also_needs: str = ""  # a source outside the catalogs (kube-state-metrics)
    confirm: Callable[[Config], list[Expr]] = field(repr=False, default=lambda cfg: [])
    symptom_remedies: dict[str, tuple[str, ...]] = field(default_factory=dict)  # alerts with no failure mode

    @property
    def failures(self) -> tuple[FailureMode, ...]:
        """The diagnosis causes this alert stands for (core/failures.py), if it is a cause alert."""
        return BY_ALERT.get(self.name, ())

    @property
    def remedies(self) -> dict[str, tuple[str, ...]]:
        """any / vllm / sglang -> what to do: the failure modes' text, shared with the diagnosis report."""
        if not self.failures:
            return self.symptom_remedies
        out: dict[str, tuple[str, ...]] = {}
        for mode in self.failures:
            for backend, items in mode.remedies.items():
                out[backend] = out.get(backend, ()) + tuple(i for i in items if i not in out.get(backend, ()))
        return out


# ---- small helpers --------------------------------------------------------------------------

def rec(cfg: Config, sig: str, level: str, role: str | None = None, *matchers: Matcher) -> Selector:
    names = record_names(signal(sig), level, cfg.recording.rate_window)
    return Selector(names[role] if role else next(iter(names.values())), matchers)


def who(cfg: Config, tier: str) -> str:
    """The identity phrase of a description, from the configured label names."""
    lb = cfg.labels
    t = lambda name: "{{ $labels." + name + " }}"  # noqa: E731
    if tier == "model":
        text = f"Model {t(lb.model)} of {t(lb.namespace)}/{t(lb.workload)} ({t(lb.backend)})"
    elif tier == "pod":
        text = f"Pod {t(lb.namespace)}/{t(lb.pod)} ({t(lb.model)}, {t(lb.backend)})"
    else:
        text = (f"GPU {t('gpu')} ({t('UUID')}) on {t('hostname')}, used by pod {t(lb.namespace)}/{t(lb.pod)} "
                f"({t(lb.model)})")
    return text + (f" in cluster {t(lb.cluster)}" if lb.cluster else "")


def with_model(cfg: Config, gpu_expr: Expr) -> Expr:
    """Adds the model label of the pod using the GPU, remembered past a crashed engine (core/records.py
    gpu_owner); one model per pod: topk keeps any model of a pod serving several, so the join can never
    fail as many-to-many."""
    jk = cfg.labels.join_keys()
    info = Agg("topk", Selector(info_names()["gpu_owner"]), by=jk, param=Num(1))
    return BinOp("*", gpu_expr, info, on=jk, group_left=(cfg.labels.model,))


VALUE = "{{ $value | humanizePercentage }}"
COUNT = '{{ printf "%.0f" $value }}'
RATE = '{{ printf "%.2f" $value }}'


# ---- model tier -----------------------------------------------------------------------------

def serving_absent(cfg: Config) -> list[tuple[Expr, str]]:
    """A model had traffic recently, its targets still exist, but no pod reports engine metrics."""
    lb, mk = cfg.labels, cfg.labels.model_keys()
    had = agg("group", over_time("max", rec(cfg, "requests", MODEL, "rate"), cfg.alerts.serving_lookback) > 0, mk)
    now = Selector(info_names()["model_pods"])
    workload = tuple(k for k in (lb.cluster, lb.namespace, lb.workload) if k)
    targets = agg("group", Selector("up", (Matcher(lb.workload, "", "!="),)), workload)
    expr = had.unless(now, on=mk).and_(targets, on=workload)
    return [(expr, f"{who(cfg, 'model')} served requests in the last {cfg.alerts.serving_lookback}, its "
                   "scrape targets still exist, but no pod reports engine metrics any more: the model is not "
                   "being served (pods down, crash-looping or not ready, or the engine stopped exporting).")]


# Kubernetes controllers whose desired replica count kube-state-metrics exports: metric, name label.
DESIRED_REPLICAS = (("kube_deployment_spec_replicas", "deployment"), ("kube_statefulset_replicas", "statefulset"))


def replicas_lost(cfg: Config) -> list[tuple[Expr, str]]:
    """Fewer pods report engine metrics for a model than its settled level within the lookback.

    The settled level is the hour's maximum of the 10-minute minimum, so the extra pods of a rolling
    update (gone within minutes) never become the level a later count is held to. Needs no `up == 0` (a
    deleted or evicted pod has no target) and no kube-state-metrics; where kube-state-metrics reports a
    desired replica count for a controller named like the workload, a deliberate scale-down is exempt."""
    lb, mk = cfg.labels, cfg.labels.model_keys()
    lookback = cfg.alerts.replica_lookback
    count = Selector(info_names()["model_pods"])
    settled = over_time("max", over_time("min", count, "10m"), lookback)
    lost = BinOp("-", settled, count, on=mk) > 0
    workload = tuple(k for k in (lb.cluster, lb.namespace, lb.workload) if k)
    for metric, name in DESIRED_REPLICAS:
        desired = Selector(metric)
        scaled_down = label_replace(desired < over_time("max", desired, lookback), lb.workload, "$1", name, "(.+)")
        lost = lost.unless(scaled_down, on=workload)
    return [(lost, f"{who(cfg, 'model')} is served by {COUNT} pod(s) fewer than its settled level within the "
                   f"last {lookback}, and kube-state-metrics (where present) shows no scale-down: pods were "
                   "deleted, evicted, preempted or lost with their node, and the remaining pods take their "
                   "traffic.")]


def baseline(cfg: Config, sel: Selector, func: str) -> Expr:
    """A model record over `alerts.exogenous_baseline`, ending `alerts.exogenous_skip` ago (so the shift
    being measured is not part of its own baseline)."""
    a = cfg.alerts
    return over_time(func, replace(sel, offset=a.exogenous_skip), a.exogenous_baseline)


def traffic_surge(cfg: Config) -> list[tuple[Expr, str]]:
    """More requests arrive than the model ever served in its baseline window, and they queue: beyond
    capacity. A spike the pods absorb (no queue) is not a cause of anything. Arrivals are the pods'
    `requests_arrived` record (core/records.py), the one the diagnosis reads, summed to the model."""
    a, mk = cfg.alerts, cfg.labels.model_keys()
    served = rec(cfg, "requests", MODEL, "rate")
    most = baseline(cfg, served, "max")
    arrived = agg("sum", rec(cfg, "requests_arrived", POD, "rate"), mk)
    surge = BinOp(">", arrived, most * a.surge_factor, on=mk).and_(served >= cfg.slo.min_request_rate)
    expr = surge.and_(rec(cfg, "requests_waiting", MODEL) > a.queue_waiting, on=mk)
    return [(expr, f"{who(cfg, 'model')} receives {RATE} requests/s (finished, plus the growth of running and waiting), over "
                   f"{number(a.surge_factor)}x the most it served in the {a.exogenous_baseline} before the last "
                   f"{a.exogenous_skip}, and more than {number(a.queue_waiting)} requests queue: the traffic is "
                   "beyond the capacity it had.")]


def length_shift(cfg: Config) -> list[tuple[Expr, str, dict[str, str]]]:
    """Tokens per request (prompt, then generation) several times their baseline: more work per request."""
    a, mk = cfg.alerts, cfg.labels.model_keys()
    requests = rec(cfg, "requests", MODEL, "rate")
    out = []
    for sig, what, length in (("prompt_tokens", "prompt", "prompt"), ("generation_tokens", "generated", "generation")):
        tokens = rec(cfg, sig, MODEL, "rate")
        now = tokens / positive(requests)
        before = baseline(cfg, tokens, "sum") / positive(baseline(cfg, requests, "sum"))
        shift = BinOp(">", now, before * a.length_factor, on=mk).and_(requests >= cfg.slo.min_request_rate)
        out.append((shift, f"{who(cfg, 'model')} averages {COUNT} {what} tokens per request, over "
                           f"{number(a.length_factor)}x its average in the {a.exogenous_baseline} before the last "
                           f"{a.exogenous_skip}: each request needs more {'prefill' if what == 'prompt' else 'decode'} "
                           "work, so latency rises without any fault in the serving stack.", {"length": length}))
    return out


# ---- pod tier -------------------------------------------------------------------------------

def target_down(cfg: Config) -> list[tuple[Expr, str]]:
    """A pod that served a model and cannot be scraped, or a pod that never could, unless it is a silent
    member of a multi-node instance: not up once in the lookback while another pod of its instance serves.
    vLLM on a LeaderWorkerSet runs its API server, and so `/metrics`, on the leader only; the workers are
    Ray nodes holding GPUs (docs/alerts.md). Their targets stay scraped because `up` carries the instance
    label that attributes their GPUs (core/records.py). SGLang's other nodes export scheduler metrics, so
    they are up and still alert when they go down."""
    lb = cfg.labels
    jk, pk = lb.join_keys(), lb.pod_keys()
    down = BinOp("==", Selector("up", (Matcher(lb.workload, "", "!="),)), Num(0))
    known = agg("max", over_time("max", Selector(info_names()["pod_model"]), cfg.alerts.serving_lookback), pk)
    members = Selector(info_names()["pod_instance"])
    ik = tuple(k for k in (lb.cluster, lb.namespace) if k) + (lb.instance,)
    serving = agg("group", members.and_(known, on=jk), ik)  # instances with a pod that reports a model
    ever_up = over_time("max", Selector("up", (Matcher(lb.workload, "", "!="),)), cfg.alerts.serving_lookback) > 0
    silent = members.and_(serving, on=ik).unless(known, on=jk).unless(ever_up, on=jk)
    expr = known.and_(down, on=jk).or_(agg("max", down, lb.pod_identity()).unless(known, on=jk)
                                       .unless(silent, on=jk))
    return [(expr, f"{who(cfg, 'pod')}: Prometheus cannot scrape the inference server (up == 0). Its requests "
                   "go to the remaining pods, or fail if none is left.")]


def restarted(cfg: Config) -> list[tuple[Expr, str]]:
    lb, jk = cfg.labels, cfg.labels.join_keys()
    restarts = agg("max", Call("changes", (Selector("kube_pod_container_status_restarts_total", range="15m"),)), jk)
    known = agg("max", over_time("max", Selector(info_names()["pod_model"]), cfg.alerts.serving_lookback),
                lb.pod_keys())
    expr = BinOp("*", known, restarts >= 1, on=jk, group_left=())
    return [(expr, f"{who(cfg, 'pod')} restarted {COUNT} time(s) in the last 15 minutes; in-flight requests "
                   "were lost and its KV and prefix caches start cold.")]


def queue_backlog(cfg: Config) -> list[tuple[Expr, str]]:
    a = cfg.alerts
    waiting = rec(cfg, "requests_waiting", POD) > a.queue_waiting
    fast = rec(cfg, "queue_time_seconds", POD, "mean") <= a.queue_time_seconds
    expr = waiting.unless(fast, on=cfg.labels.pod_keys())
    return [(expr, f"{who(cfg, 'pod')} has {COUNT} requests waiting (threshold {number(a.queue_waiting)}) and "
                   f"their mean queue time is over {number(a.queue_time_seconds)}s (where the engine exports it): "
                   "requests arrive faster than the running batch can take them.")]


def held(cfg: Config, expr: Selector, func: str = "max") -> Expr:
    """A value's extreme over `alerts.hold`: a value hovering at a threshold (KV 0.88-0.99 against 0.95)
    keeps a condition true between crossings, so the alert neither flaps nor restarts its `for` timer.
    Smoothed in the expression rather than `keep_firing_for`, which vmalert before 1.90 rejects."""
    return over_time(func, expr, cfg.alerts.hold)


def kv_saturated(cfg: Config) -> list[tuple[Expr, str]]:
    kv = held(cfg, rec(cfg, "kv_cache_usage", POD)) > cfg.alerts.kv_cache_usage
    expr = kv.and_(positive(rec(cfg, "preemptions", POD, "rate")))
    return [(expr, f"{who(cfg, 'pod')} has its KV cache {VALUE} full and is preempting (vLLM) or retracting "
                   "(SGLang) running requests, which recompute their prefill later: latency rises for "
                   "everyone on the pod.")]


def preemption_storm(cfg: Config) -> list[tuple[Expr, str]]:
    expr = rec(cfg, "preemptions", POD, "rate") > cfg.alerts.preemption_rate
    return [(expr, f"{who(cfg, 'pod')} preempts or retracts {RATE} requests per second (threshold "
                   f"{number(cfg.alerts.preemption_rate)}/s); each one throws away KV cache and redoes prefill.")]


def prefix_collapse(cfg: Config) -> list[tuple[Expr, str]]:
    a = cfg.alerts
    ratio = rec(cfg, "prefix_cache_hit", POD)
    base = over_time("avg", ratio, a.prefix_hit_baseline)
    expr = (ratio < base * (1 - a.prefix_hit_drop)).and_(base >= a.prefix_hit_min_baseline)
    return [(expr, f"{who(cfg, 'pod')} serves only {VALUE} of prompt tokens from its prefix cache, less than "
                   f"{number(round((1 - a.prefix_hit_drop) * 100, 2))}% of its {a.prefix_hit_baseline} average: more "
                   "prefill work per request, so time to first token rises.")]


def load_imbalance(cfg: Config) -> list[tuple[Expr, str]]:
    a, mk = cfg.alerts, cfg.labels.model_keys()
    waiting = rec(cfg, "requests_waiting", POD)
    others = BinOp("-", agg("sum", waiting, mk), waiting, on=mk, group_right=())
    siblings = BinOp("/", others, agg("count", waiting, mk) - 1 > 0, on=mk, group_left=())
    expr = (waiting > siblings * a.imbalance_factor).and_(waiting > a.queue_waiting)
    return [(expr, f"{who(cfg, 'pod')} has {COUNT} requests waiting, over {number(a.imbalance_factor)}x the "
                   "average of the other pods serving the model: the load balancer keeps sending work to a "
                   "pod that cannot keep up.")]


def kv_transfer_failing(cfg: Config) -> list[tuple[Expr, str]]:
    """Prefill/decode disaggregation: transfers (or bootstraps, notifications) fail, or KV blocks held for
    a decode peer expire before it fetches them. The rate is held over `alerts.hold` (`held`), so a short
    `for` neither flaps nor restarts while the rate hovers at the threshold."""
    thr, pk = cfg.alerts.kv_transfer_failure_rate, cfg.labels.pod_keys()
    failed = agg("sum", held(cfg, rec(cfg, "kv_transfer_failures", POD, "rate")), pk) > thr
    expired = held(cfg, rec(cfg, "kv_transfer_timeouts", POD, "rate")) > thr
    return [(failed.or_(expired), f"{who(cfg, 'pod')} loses {RATE} KV transfers per second (threshold "
                                  f"{number(thr)}/s): failed transfers, bootstraps or notifications, or KV blocks "
                                  "that expired before the decode peer fetched them. Those requests wait, "
                                  "retry their prefill or fail, so time to first token rises on the decode pods.")]


def lora_slots_exhausted(cfg: Config) -> list[tuple[Expr, str]]:
    """Every LoRA adapter slot of the batch is in use and requests wait for an adapter that has none.
    vLLM names the waiting adapters (`vllm:lora_requests_info`); SGLang exports only its pool's slots, so
    there a full pool with a queue stands for it, on pods that report no waiting adapters."""
    a, pk = cfg.alerts, cfg.labels.pod_keys()
    full = BinOp(">=", rec(cfg, "lora_adapters_running", POD), rec(cfg, "lora_adapters_max", POD), on=pk)
    waiting = rec(cfg, "lora_adapters_waiting", POD)
    named = (waiting > 0).and_(full, on=pk)
    queued = (rec(cfg, "requests_waiting", POD) > a.queue_waiting).and_(full, on=pk).unless(waiting, on=pk)
    return [(named.or_(queued), f"{who(cfg, 'pod')} has every LoRA adapter slot in use while {COUNT} adapters "
                                f"(vLLM: the adapters waiting requests name) or requests (SGLang, over "
                                f"{number(a.queue_waiting)} queued) wait: requests for an adapter without a slot "
                                "stay queued although the batch and the KV cache have room.")]


def spec_acceptance_drop(cfg: Config) -> list[tuple[Expr, str]]:
    """Draft-token acceptance well below its own baseline while the model's decode speed per running
    request falls: each speculative step yields fewer tokens, so the drop costs latency, not just drafts."""
    a, mk = cfg.alerts, cfg.labels.model_keys()
    accept = rec(cfg, "spec_accept_rate", POD, "ratio")
    dropped = accept < baseline(cfg, accept, "avg") * (1 - a.spec_accept_drop)
    tokens, running = rec(cfg, "generation_tokens", MODEL, "rate"), rec(cfg, "requests_running", MODEL)
    speed = tokens / positive(over_time("avg", running, cfg.recording.rate_window))
    before = baseline(cfg, tokens, "sum") / positive(baseline(cfg, running, "sum"))
    slower = BinOp("<", speed, before * (1 - a.spec_decode_slowdown), on=mk)
    return [(dropped.and_(slower, on=mk),
             f"{who(cfg, 'pod')} accepts {VALUE} of its speculative draft tokens, under "
             f"{number(round((1 - a.spec_accept_drop) * 100, 2))}% of its average in the {a.exogenous_baseline} "
             f"before the last {a.exogenous_skip}, and the model decodes over "
             f"{number(round(a.spec_decode_slowdown * 100, 2))}% fewer tokens per second per running request: "
             "the draft model no longer predicts this traffic, so each step yields fewer tokens.")]


# ---- GPU tier -------------------------------------------------------------------------------

def passing(cfg: Config, sig: str, floor: float) -> Expr:
    """The GPUs whose raw field is above `floor`, with their pod and model: testing each raw series first
    labels a handful of GPUs instead of aggregating and joining every GPU of the fleet (core/records.py
    gpu_past, gpu_attributed)."""
    return gpu_attributed(cfg, gpu_past(cfg, sig, floor))


def held_raw(cfg: Config, name: str) -> Expr:
    """A raw GPU gauge per GPU (core/records.py gpu_value) at its highest over `alerts.hold`, for a field
    read by one alert only, over minutes: cheaper than recording it for the alert to read
    (docs/benchmarks.md)."""
    def held_selector(node: Expr) -> Expr | None:
        return over_time("max", node, cfg.alerts.hold) if isinstance(node, Selector) else None
    return transform(gpu_value(cfg, signal(name)), held_selector)


def by_id(name: str) -> Selector:
    """A GPU field's record per GPU (core/records.py GPU_BY_ID), keyed by `gpu_id`: tested first, then
    joined to `llm_gpu:info` (gpu_join) for the GPUs that pass."""
    return Selector(id_name(signal(name)))


def past(cfg: Config, names: tuple[str, ...], threshold: float = 0.0) -> Expr:
    """The GPUs whose signals (any of `names`) are past `threshold`, with their pod and model, from the
    sparse records of the GPUs past each signal's floor (core/records.py gpu_high): a handful of series,
    where the raw fields are one per GPU of the fleet."""
    floors = gpu_floors(cfg)
    records = [(Selector(high_name(n)), floors[n]) for n in names if n in floors]
    return gpu_attributed(cfg, any_of([r if threshold <= floor else r > threshold for r, floor in records]))


def xid(cfg: Config) -> list[tuple[Expr, str]]:
    expr = with_model(cfg, past(cfg, ("xid_last",)))
    return [(expr, f"{who(cfg, 'gpu')} reported XID {COUNT}. Look the code up in NVIDIA's XID catalog: some "
                   "need only an application restart, others a GPU reset or node drain.")]


def ecc(cfg: Config) -> list[tuple[Expr, str]]:
    expr = with_model(cfg, past(cfg, ("row_remap_failure", "remapped_rows_uncorrectable", "ecc_dbe_errors")))
    return [(expr, f"{who(cfg, 'gpu')} has uncorrectable memory errors (double-bit ECC, rows remapped after "
                   "uncorrectable errors, or a failed row remap): the GPU needs a reset and possibly service.")]


def throttled(cfg: Config) -> list[tuple[Expr, str]]:
    a = cfg.alerts
    clock = by_id("sm_clock_mhz")
    dropped = held(cfg, clock, "min") < over_time("max", clock, "1h") * (1 - a.gpu_clock_drop)
    hot = sift(held_raw(cfg, "temperature_celsius"), ">=", a.gpu_temperature_celsius)  # tested before grouping
    counted = passing(cfg, "throttle", 0.05)
    expr = with_model(cfg, gpu_join(cfg, dropped.and_(hot)).or_(counted))
    return [(expr, f"{who(cfg, 'gpu')} is throttled: its SM clock fell over {number(round(a.gpu_clock_drop * 100, 2))}% "
                   f"below its 1h maximum at {number(a.gpu_temperature_celsius)}°C or more, or the driver reports "
                   "thermal/power violation time. Every request on this GPU slows down.")]


def fb_full(cfg: Config) -> list[tuple[Expr, str]]:
    expr = with_model(cfg, past(cfg, ("fb_used",), cfg.alerts.gpu_fb_used_ratio))
    return [(expr, f"{who(cfg, 'gpu')} has {VALUE} of its framebuffer in use, beyond what the engine "
                   "preallocates for weights and KV cache: the next allocation (CUDA graphs, activations, "
                   "another process) can fail with out-of-memory.")]


def compute_saturated(cfg: Config) -> list[tuple[Expr, str]]:
    expr = with_model(cfg, gpu_join(cfg, by_id("engine_active") > cfg.alerts.gpu_compute_active))
    return [(expr, f"{who(cfg, 'gpu')} is busy {VALUE} of the time: this pod has no compute headroom left, "
                   "so more traffic means more queueing.")]


def idle_while_queued(cfg: Config) -> list[tuple[Expr, str]]:
    a, jk = cfg.alerts, cfg.labels.join_keys()
    queued = agg("sum", rec(cfg, "requests_waiting", POD), jk) > a.queue_waiting
    expr = with_model(cfg, gpu_join(cfg, by_id("engine_active") < a.gpu_idle_active, pods=queued))
    return [(expr, f"{who(cfg, 'gpu')} is busy only {VALUE} of the time while requests wait in its pod: the "
                   "engine is host-bound (scheduler, tokenizer, API server or input processing on CPU), not "
                   "short of GPU.")]


# ---- the catalog of alerts ------------------------------------------------------------------


ALERTS: tuple[Alert, ...] = (
    Alert("LLMModelErrorBudgetBurn", "model", "critical", "", "A model is spending an error budget too fast.",
          "Requests of one model fail or are too slow often enough to spend a meaningful part of its SLO error "
          "budget: page tiers within hours, ticket tiers within days. The `slo` label says which objective "
          "(availability, ttft, itl, e2e_latency), `burn_tier`, `long` and `short` which windows.",
          (("requests",), ("request_errors", "ttft_seconds", "itl_seconds", "e2e_latency_seconds")),
          ("availability: engine errors or HTTP 5xx on every pod (bad rollout, model/config error), or on one "
           "pod (GPU XID, OOM): see the pod and GPU alerts of the same model",
           "latency: queueing (LLMPodQueueBacklog), KV-cache pressure and preemptions, a prefix-cache hit-ratio "
           "collapse, longer prompts, a host-bound engine or a throttled GPU"),
          None, confirm=lambda cfg: [Selector(slo.sli_name(k, w)) for k in ("availability", "ttft")
                                      for w in slo.windows(cfg)[:2]],
          symptom_remedies={"vllm": VLLM_KV, "sglang": SGLANG_KV,
                            "any": ("scale out the workload", "roll back the last change")}),
    Alert("LLMModelServingAbsent", "model", "critical", "5m", "A model with recent traffic is no longer served.",
          "No pod reports engine metrics for a model that served traffic within `alerts.serving_lookback`, while "
          "its scrape targets still exist (so the workload was not scaled to zero on purpose).",
          (("requests_running",),),
          ("every pod down or crash-looping (OOM, bad image, GPU fault)", "engine hung before serving",
           "metrics renamed by an engine upgrade (check `inferwatch` catalog versions)"),
          serving_absent),
    Alert("LLMModelReplicasLost", "model", "warning", "2m", "A model lost serving pods.",
          "Fewer pods report engine metrics for a model than its settled count within "
          "`alerts.replica_lookback` (the hour's maximum of each 10-minute minimum, so rolling-update surges "
          "do not count), and no kube-state-metrics desired replica count of a controller named like the "
          "workload went down.",
          (("requests_running",),),
          ("pods deleted or evicted (node drain, preemption by higher-priority pods, spot reclaim)",
           "a node lost with its pods", "pods crash-looping or not ready", "an autoscaler scaling down "
           "without kube-state-metrics to tell"),
          replicas_lost),
    Alert("LLMModelTrafficSurge", "model", "warning", "1m", "Traffic beyond a model's recent capacity.",
          "Requests arrive at a model (finished plus the growth of running and waiting: the pods' "
          "`requests_arrived` record) at over `alerts.surge_factor` times the most it served in its baseline window "
          "(`alerts.exogenous_baseline`, ending `alerts.exogenous_skip` ago) and requests queue: an exogenous "
          "cause, the serving stack is not at fault.",
          (("requests",), ("requests_running",), ("requests_waiting",)),
          ("a client or batch job that grew", "a retry storm after an upstream failure",
           "traffic shifted from another region or model"),
          traffic_surge),
    Alert("LLMModelRequestLengthShift", "model", "info", "", "Requests got much longer.",
          "Prompt or generated tokens per request are over `alerts.length_factor` times their baseline average "
          "(`alerts.exogenous_baseline`, ending `alerts.exogenous_skip` ago): more prefill or decode work per "
          "request, an exogenous cause of latency.",
          (("requests",), ("prompt_tokens", "generation_tokens")),
          ("a client sending long documents (RAG, agents)", "a new system prompt or template",
           "max_tokens raised by a client"),
          length_shift),
    Alert("LLMPodTargetDown", "pod", "warning", "5m", "An inference pod cannot be scraped.",
          "`up == 0` for an inference pod: Prometheus cannot reach its metrics endpoint.",
          (("requests_running",),),
          ("pod crash-looping or not ready", "engine process hung", "network policy or port name changed"),
          target_down),
    Alert("LLMPodRestarted", "pod", "warning", "", "An inference pod restarted.",
          "A container of an inference pod restarted (kube-state-metrics), losing in-flight requests and caches.",
          (("requests_running",),),
          ("GPU out-of-memory at a traffic peak", "XID error / GPU fault", "liveness probe timeouts under load"),
          restarted, also_needs="kube-state-metrics (`kube_pod_container_status_restarts_total`)"),
    Alert("LLMPodQueueBacklog", "pod", "warning", "1m", "Requests queue up in an inference pod.",
          "Requests wait before their first forward pass: the pod's running batch is full.",
          (("requests_waiting",),),
          ("more traffic than the pod's capacity", "KV-cache pressure limits the batch", "long prompts",
           "a load imbalance between pods", "host-bound engine"),
          queue_backlog),
    Alert("LLMPodKVCacheSaturated", "pod", "warning", "1m", "KV cache is full and requests are preempted.",
          "KV-cache usage is near 100% and the engine preempts (vLLM) or retracts (SGLang) running requests.",
          (("kv_cache_usage",), ("preemptions",)),
          ("long prompts or outputs", "too many concurrent sequences", "a prefix cache that no longer hits"),
          kv_saturated),
    Alert("LLMPodPreemptionStorm", "pod", "warning", "1m", "An inference pod preempts requests continuously.",
          "The engine evicts running requests faster than `alerts.preemption_rate`; each redoes its prefill.",
          (("preemptions",),),
          ("KV cache too small for the batch", "burst of long generations"),
          preemption_storm),
    Alert("LLMPodPrefixCacheHitRatioCollapse", "pod", "info", "", "The prefix-cache hit ratio collapsed.",
          "The share of prompt tokens served from the prefix cache fell well below the pod's own recent "
          "average, so each request needs more prefill compute.",
          (("prefix_cache_hit", "prefix_cache_hits"),),
          ("a new system prompt or template", "routing no longer sends a session to the same pod",
           "cache evictions from KV pressure"),
          prefix_collapse),
    Alert("LLMPodLoadImbalance", "pod", "info", "1m", "One pod queues far more than its siblings.",
          "One pod's queue is several times the average of the other pods of the same model.",
          (("requests_waiting",),),
          ("round-robin balancing with uneven request sizes", "session affinity", "a slow pod (throttled GPU)"),
          load_imbalance),
    Alert("LLMPodKVTransferFailing", "pod", "warning", "1m", "Prefill/decode KV transfers fail.",
          "A disaggregated pod fails KV-cache transfers (vLLM NIXL transfers or notifications, SGLang bootstraps "
          "or transfers), or lets KV blocks expire before the decode peer pulls them, faster than "
          "`alerts.kv_transfer_failure_rate` (the highest 5-minute rate of the last `alerts.hold`, so a rate "
          "hovering at the threshold does not restart `for`).",
          (("kv_transfer_failures", "kv_transfer_timeouts"),),
          ("network path between prefill and decode pods (RDMA/UCX down, MTU, security groups)",
           "a decode pod restarted or overloaded and stopped fetching", "bootstrap server unreachable (SGLang)",
           "KV transfer timeout too short for the transfer size"),
          kv_transfer_failing),
    Alert("LLMPodLoRASlotsExhausted", "pod", "warning", "1m", "Requests wait for a LoRA adapter slot.",
          "Every LoRA adapter slot of the pod's batch is in use (vLLM `--max-loras`, SGLang's adapter pool) and "
          "requests wait for an adapter that has none: vLLM lists the waiting adapters in "
          "`vllm:lora_requests_info`; SGLang, which does not, counts when its pool is full and more than "
          "`alerts.queue_waiting` requests queue.",
          (("lora_adapters_running",), ("lora_adapters_max",), ("lora_adapters_waiting", "requests_waiting")),
          ("clients name more distinct adapters than the pod has slots (a new tenant or adapter rollout)",
           "`--max-loras` lowered in a rollout", "routing spreads every adapter over every pod"),
          lora_slots_exhausted),
    Alert("LLMPodSpecDecodeAcceptanceDrop", "pod", "info", "", "Speculative-decoding acceptance dropped.",
          "The pod accepts under `1 - alerts.spec_accept_drop` of the draft tokens it accepted in its baseline "
          "window (`alerts.exogenous_baseline`, ending `alerts.exogenous_skip` ago), while the model's "
          "generated tokens per second per running request fall by over `alerts.spec_decode_slowdown`: each "
          "step yields fewer tokens, so decoding slows.",
          (("spec_accept_rate",), ("generation_tokens",), ("requests_running",)),
          ("a new traffic mix the draft model predicts badly (language, task, sampling temperature)",
           "a changed or mismatched draft model", "a template change that alters the generated text"),
          spec_acceptance_drop),
    Alert("LLMGPUXidError", "gpu", "warning", "", "A GPU reported an XID error.",
          "dcgm-exporter reports a non-zero last XID code for a GPU used by an inference pod.",
          (("xid_last",),),
          ("driver or hardware fault (XID 48/63/64 memory, 79 fell off the bus)", "application error (XID 13/31)"),
          xid),
    Alert("LLMGPUEccOrRowRemapFailure", "gpu", "warning", "", "A GPU has uncorrectable memory errors.",
          "Double-bit ECC errors, rows remapped after uncorrectable errors, or a failed row remap.",
          (("row_remap_failure", "remapped_rows_uncorrectable", "ecc_dbe_errors"),),
          ("failing HBM",), ecc),
    Alert("LLMGPUThrottled", "gpu", "warning", "1m", "A GPU is thermally or power throttled.",
          "The SM clock dropped while the GPU is hot, or the driver counts thermal/power violation time.",
          (("sm_clock_mhz", "throttle"), ("temperature_celsius", "throttle")),
          ("cooling failure or blocked airflow", "power cap", "a straggler slowing its tensor-parallel group"),
          throttled),
    Alert("LLMGPUFramebufferNearlyFull", "gpu", "warning", "1m", "GPU memory is nearly full.",
          "Framebuffer use is above what the engine preallocates (vLLM `gpu_memory_utilization`, SGLang "
          "`mem_fraction_static`).",
          (("fb_used_mib",), ("fb_free_mib",)),
          ("another process on the GPU", "CUDA graphs or activations growing", "preallocation set too high"),
          fb_full),
    Alert("LLMGPUComputeSaturated", "gpu", "info", "1m", "A GPU has no compute headroom.",
          "The graphics/compute engine is busy nearly all the time (GR_ENGINE_ACTIVE, else GPU_UTIL).",
          (("engine_active",),),
          ("traffic at the pod's capacity", "long prompts (compute-bound prefill)"),
          compute_saturated),
    Alert("LLMGPUIdleWhileQueued", "gpu", "warning", "1m", "The GPU idles while requests queue (host-bound).",
          "Requests wait in the pod, yet its GPU is mostly idle: the bottleneck is on the CPU side.",
          (("engine_active",), ("requests_waiting",)),
          ("tokenization or detokenization on too few CPU cores", "API server saturated",
           "multimodal preprocessing", "CPU limits throttling the engine"),
          idle_while_queued),
)

BY_NAME = {a.name: a for a in ALERTS}


def alert_names() -> list[str]:
    return [a.name for a in ALERTS]


def severity_of(cfg: Config, a: Alert) -> str:
    return cfg.alerts.severity.get(a.name, a.severity)


def runbook_url(cfg: Config, name: str) -> str:
    return f"{cfg.output.runbook_base_url.rstrip('/')}/{name}.md"


def rules_of(cfg: Config, a: Alert) -> list[AlertingRule]:
    url = runbook_url(cfg, a.name)
    if a.name == slo.ALERT:
        return slo.burn_rules(cfg, url, who(cfg, "model"))
    labels = contract(severity_of(cfg, a), a.tier)
    return [AlertingRule(a.name, expr, cfg.alerts.for_durations.get(a.name, a.for_ or "0s"),
                         {**labels, **(extra[0] if extra else {})},
                         {"summary": a.summary, "description": desc, "runbook_url": url})
            for expr, desc, *extra in a.build(cfg)]


def check_config(cfg: Config) -> None:
    """The `alerts:` section: known alert names, severities and ratios."""
    names = alert_names()
    for name, sev in cfg.alerts.severity.items():
        if name not in names:
            raise ConfigError(f"alerts.severity.{name}: unknown alert; known: {', '.join(names)}")
        if sev not in SEVERITIES:
            raise ConfigError(f"alerts.severity.{name}: {sev!r}; use critical, warning or info")
    for name in cfg.alerts.for_durations:
        if name not in names:
            raise ConfigError(f"alerts.for_durations.{name}: unknown alert; known: {', '.join(names)}")
    a = cfg.alerts
    for key in ("kv_cache_usage", "prefix_hit_drop", "prefix_hit_min_baseline", "gpu_clock_drop",
                "gpu_fb_used_ratio", "gpu_compute_active", "gpu_idle_active", "spec_accept_drop",
                "spec_decode_slowdown"):
        if not 0 < getattr(a, key) <= 1:
            raise ConfigError(f"alerts.{key}: {getattr(a, key)} must be a ratio in (0, 1]")


def alert_groups(cfg: Config) -> list[RuleGroup]:
    """SLI records, then one alert group per tier."""
    if not cfg.alerts.enabled:
        return []
    groups = [slo.sli_group(cfg)]
    for tier in ("model", "pod", "gpu"):
        if tier == "gpu" and not cfg.gpu.enabled:
            continue
        later = query_time(cfg)  # a GPU field read by an alert is joined to its owner right there
        rules = [replace(r, expr=inline(r.expr, later)) for a in ALERTS if a.tier == tier for r in rules_of(cfg, a)]
        groups.append(RuleGroup(f"inferwatch-alerts-{tier}", cfg.recording.interval, tuple(rules),
                                f"inferwatch-alerts-{tier}"))
    return groups
