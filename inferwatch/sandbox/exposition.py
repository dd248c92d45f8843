"""The series engines, Kubernetes and dcgm-exporter expose, written from per-step engine state.

One writer for both kinds of scenario: painted ones (`norm-*`, exact values for the recording-rule tests)
give a `Step` per sample through `painted_step`; the simulator (sim/emit.py) gives one from its serving
model. Names, labels and buckets follow each engine version's profile and the catalogs' bucket lists.
"""
from __future__ import annotations

import bisect
import itertools
import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..core.catalog import load_catalog

if TYPE_CHECKING:
    from .scenario import ModelSpec, Pod, Scenario


SIGMA = 0.35  # log-normal spread of latencies and lengths around their median


@dataclass(frozen=True)
class Profile:
    kv_usage: tuple[str, ...]
    prefix: tuple[str, ...]       # prefixes of prefix-cache counters ("" new, "gpu_" old)
    itl: tuple[str, ...]
    error_reason: bool = False     # vLLM finished_reason="error" (0.13+)
    sched_labels: tuple[str, ...] = ()  # SGLang scheduler rank labels
    retract: str = ""             # SGLang: counter | gauge | ""
    queue_hist: bool = True
    streaming_label: bool = False
    aborted: bool = True
    token_hist: bool = True
    spec_gauges: tuple[str, ...] = ()  # SGLang: speculative-decoding gauges, 0 without speculative decoding


PROFILES: dict[tuple[str, str], Profile] = {
    ("vllm", "0.8"): Profile(("vllm:gpu_cache_usage_perc",), ("gpu_",), ("vllm:time_per_output_token_seconds",)),
    ("vllm", "0.9"): Profile(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), ("", "gpu_"),
                             ("vllm:time_per_output_token_seconds",)),
    ("vllm", "0.11"): Profile(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), ("", "gpu_"),
                              ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
    ("vllm", "0.33"): Profile(("vllm:kv_cache_usage_perc",), ("",), ("vllm:inter_token_latency_seconds",),
                              error_reason=True),
    ("sglang", "0.4.5"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                 queue_hist=False, aborted=False, token_hist=False,
                                 spec_gauges=("sglang:spec_accept_length",)),
    ("sglang", "0.5.3"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                 sched_labels=("tp_rank", "pp_rank"), retract="gauge",
                                 spec_gauges=("sglang:spec_accept_length",)),
    ("sglang", "0.5.23"): Profile(("sglang:token_usage",), (), ("sglang:inter_token_latency_seconds",),
                                  sched_labels=("tp_rank", "pp_rank", "moe_ep_rank"), retract="counter",
                                  streaming_label=True,
                                  spec_gauges=("sglang:spec_accept_length", "sglang:spec_accept_rate")),
}


def _engine_buckets(engine: str) -> dict[str, tuple[float, ...]]:
    """The engine's default bucket boundaries, from its catalog (checked against real /metrics bodies)."""
    b = load_catalog(engine).buckets
    return {"ttft": b["ttft_seconds"], "itl": b["itl_seconds"], "e2e": b["e2e_latency_seconds"],
            "queue": b["queue_time_seconds"], "tokens": b["prompt_length_tokens"]}


BUCKETS = {engine: _engine_buckets(engine) for engine in ("vllm", "sglang")}


def le_text(b: float) -> str:
    """`le` as Python's client library writes it (1.0, 0.25, 1e+06)."""
    if b == math.inf:
        return "+Inf"
    text = repr(float(b))
    if "e" in text:
        return f"{b:.0e}".replace("e+0", "e+") if b >= 1e6 else text
    return text


def lognormal_cdf(x: float, median: float, sigma: float = SIGMA) -> float:
    if x <= 0 or median <= 0:
        return 0.0 if x < median or median > 0 else 1.0
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


Series = tuple[dict[str, str], list[tuple[float, float]]]


class _Acc:
    """Collects samples per series, integrating counters."""

    def __init__(self) -> None:
        self.samples: dict[tuple, list[tuple[float, float]]] = {}
        self.totals: dict[tuple, float] = {}

    def gauge(self, labels: dict[str, str], t: float, v: float) -> None:
        self.samples.setdefault(_key(labels), []).append((t, v))

    def counter(self, labels: dict[str, str], t: float, inc: float, reset: bool = False) -> None:
        k = _key(labels)
        total = 0.0 if reset else self.totals.get(k, 0.0)
        total += inc
        self.totals[k] = total
        self.samples.setdefault(k, []).append((t, total))

    def series(self) -> list[Series]:
        return [(dict(k), v) for k, v in self.samples.items()]


def _key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


@dataclass
class Dist:
    """Observations for a histogram: their count, their sum, and the share at or below a bound."""
    count: float
    total: float
    share: Callable[[float], float]

    @staticmethod
    def lognormal(median: float, count: float) -> "Dist":
        return Dist(count, count * median * math.exp(SIGMA ** 2 / 2), lambda b: lognormal_cdf(b, median))

    @staticmethod
    def observed(values: list[tuple[float, float]]) -> "Dist":
        """(value, weight) pairs, binned exactly."""
        ordered = sorted(values)
        points = [v for v, _ in ordered]
        cumulative = list(itertools.accumulate(w for _, w in ordered))
        count = cumulative[-1] if cumulative else 0.0

        def share(b: float) -> float:
            i = bisect.bisect_right(points, b)
            return cumulative[i - 1] / count if i else 0.0
        return Dist(count, sum(v * w for v, w in values), share)


@dataclass
class Step:
    """One engine part's gauges at a sample and its counters' increments since the previous sample."""
    running: float
    waiting: float
    kv_usage: float
    finished: dict[str, float]        # finished_reason -> requests (stop, length, abort, error)
    prompt_tokens: float
    generation_tokens: float
    prefix_queries: float
    prefix_hits: float
    preemptions: float
    dt: float
    hists: dict[str, Dist]            # ttft, itl, e2e, queue, prompt, gen
    # speculative-decoding and KV-transfer counters' increments, KV transfers in flight, LoRA slots
    # (keys: SURFACE_KEYS); a key is present when the pod has the feature
    surfaces: dict[str, float] = field(default_factory=dict)
    adapters: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # LoRA adapters (running, waiting)
    itl_steps: Dist | None = None  # vLLM's ITL: one gap per engine step (several tokens with speculation)

    @property
    def requests(self) -> float:
        return sum(self.finished.values())

    def merged(self, other: "Step") -> "Step":
        return Step(self.running + other.running, self.waiting + other.waiting, max(self.kv_usage, other.kv_usage),
                    {k: v + other.finished.get(k, 0.0) for k, v in self.finished.items()},
                    self.prompt_tokens + other.prompt_tokens, self.generation_tokens + other.generation_tokens,
                    self.prefix_queries + other.prefix_queries, self.prefix_hits + other.prefix_hits,
                    self.preemptions + other.preemptions, self.dt,
                    {k: _merge(d, other.hists[k]) for k, d in self.hists.items()},
                    {k: v + other.surfaces.get(k, 0.0) if k != "lora_max" else v for k, v in self.surfaces.items()},
                    tuple(tuple(sorted(set(a) | set(b))) for a, b in zip(self.adapters, other.adapters)),
                    _merge(self.itl_steps, other.itl_steps) if self.itl_steps and other.itl_steps else None)


def _merge(a: Dist, b: Dist) -> Dist:
    count = a.count + b.count
    return Dist(count, a.total + b.total,
                lambda x: (a.share(x) * a.count + b.share(x) * b.count) / count if count else 0.0)


def painted_step(st: dict[str, float], dt: float, share: float) -> Step:
    """A painted (norm-*) state as a Step: requests at the given rate, latencies log-normal."""
    reqs = st["request_rate"] * dt * share
    ok = 1 - st["error_ratio"] - st["abort_ratio"]
    prompt = reqs * st["prompt_tokens"]
    tokens = reqs * max(st["generation_tokens"] - 1, 1)
    return Step(st["running"] * share, st["waiting"] * share, st["kv_usage"],
                {"stop": reqs * ok * 0.8, "length": reqs * ok * 0.2, "abort": reqs * st["abort_ratio"],
                 "error": reqs * st["error_ratio"]},
                prompt, reqs * st["generation_tokens"], prompt, prompt * st["prefix_hit_ratio"],
                st["preemption_rate"] * share * dt, dt,
                {"ttft": Dist.lognormal(st["ttft"], reqs), "itl": Dist.lognormal(st["itl"], tokens),
                 "e2e": Dist.lognormal(st["e2e"], reqs), "queue": Dist.lognormal(st["queue_time"], reqs),
                 "prompt": Dist.lognormal(st["prompt_tokens"], reqs),
                 "gen": Dist.lognormal(st["generation_tokens"], reqs)},
                _painted_surfaces(st, reqs, reqs * st["generation_tokens"], dt * share),
                (_names(st["lora_running"], "run"), _names(st["lora_waiting"], "wait")))


SURFACE_KEYS = ("spec_drafts", "spec_draft_tokens", "spec_accepted",  # counters' increments
                "kv_transfers", "kv_transfer_seconds", "kv_transfer_bytes", "kv_transfer_failed",
                "kv_transfer_queue",  # transfers in flight to the pod (a gauge)
                "lora_max")  # adapter slots
SPEC_TOKENS = 3  # draft tokens per speculative step in painted scenarios


def _painted_surfaces(st: dict[str, float], reqs: float, tokens: float, dt: float) -> dict[str, float]:
    out = {}
    if st["spec_accept_rate"] > 0:
        drafts = tokens / (1 + SPEC_TOKENS * st["spec_accept_rate"])
        out.update(spec_drafts=drafts, spec_draft_tokens=drafts * SPEC_TOKENS,
                   spec_accepted=drafts * SPEC_TOKENS * st["spec_accept_rate"])
    if st["kv_transfer_time"] > 0:
        out.update(kv_transfers=reqs, kv_transfer_seconds=reqs * st["kv_transfer_time"],
                   kv_transfer_bytes=reqs * 64 * 2 ** 20, kv_transfer_failed=st["kv_transfer_failures"] * dt)
    if st["lora_max"] > 0:
        out["lora_max"] = st["lora_max"]
    return out


def _names(n: float, prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}-{i}" for i in range(int(round(n))))


def target_labels(m: ModelSpec, pod: Pod) -> dict[str, str]:
    target = {**m.labels, "pod": pod.name, "instance": f"{pod.name}:8000", "job": "inferwatch-llm-inference"}
    if pod.role:
        target["role"] = pod.role
    return target


def emit_engine(acc: _Acc, sc: Scenario, prof: Profile, m: ModelSpec, pod: Pod, target: dict[str, str],
                parts: list[Step], t: float, reset: bool, hit_gauge: float | None = None) -> None:
    """The engine's series of one pod: one Step per vLLM DP engine / SGLang DP rank."""
    for part, step in enumerate(parts):
        if sc.engine == "vllm":
            _vllm(acc, prof, {**target, "model_name": m.model, "engine": str(part)}, step, t, reset)
        else:
            sched_base = {**target, "model_name": m.model, "engine_type": "unified"}
            if len(parts) > 1:
                sched_base["dp_rank"] = str(part)
            hit = hit_gauge if hit_gauge is not None else (step.prefix_hits / step.prefix_queries
                                                           if step.prefix_queries else 0.0)
            _sglang_scheduler(acc, prof, sched_base, pod, step, t, reset, hit)
    whole = parts[0]
    for other in parts[1:]:
        whole = whole.merged(other)
    if sc.engine == "sglang":  # one tokenizer process per pod, whatever the DP size
        _sglang_tokenizer(acc, prof, {**target, "model_name": m.model}, whole, t, reset)
    if sc.engine == "vllm" and whole.surfaces.get("lora_max", 0) > 0:
        # one per target (all DP engines), no model_name; the value is the time the set was last seen
        running, waiting = whole.adapters
        acc.gauge({"__name__": "vllm:lora_requests_info", **target, "max_lora": str(int(whole.surfaces["lora_max"])),
                   "running_lora_adapters": ",".join(running), "waiting_lora_adapters": ",".join(waiting)}, t, t)
    if sc.engine == "vllm":
        http = {**target, "handler": "/v1/chat/completions", "method": "POST"}
        failed = whole.finished["error"]
        acc.counter({"__name__": "http_requests_total", **http, "status": "2xx"}, t, whole.requests - failed, reset)
        acc.counter({"__name__": "http_requests_total", **http, "status": "5xx"}, t, failed, reset)


def _hist(acc: _Acc, name: str, labels: dict[str, str], buckets, d: Dist, t: float, reset: bool) -> None:
    for b in tuple(buckets) + (math.inf,):
        frac = 1.0 if b == math.inf else d.share(b)
        acc.counter({"__name__": f"{name}_bucket", **labels, "le": le_text(b)}, t, d.count * frac, reset)
    acc.counter({"__name__": f"{name}_sum", **labels}, t, d.total, reset)
    acc.counter({"__name__": f"{name}_count", **labels}, t, d.count, reset)


def _vllm(acc, prof: Profile, base, st: Step, t, reset) -> None:
    b = BUCKETS["vllm"]
    acc.gauge({"__name__": "vllm:num_requests_running", **base}, t, st.running)
    acc.gauge({"__name__": "vllm:num_requests_waiting", **base}, t, st.waiting)
    for name in prof.kv_usage:
        acc.gauge({"__name__": name, **base}, t, st.kv_usage)
    reasons = ("stop", "length", "abort") + (("error",) if prof.error_reason else ())
    for reason in reasons:
        acc.counter({"__name__": "vllm:request_success_total", **base, "finished_reason": reason}, t,
                    st.finished[reason], reset)
    acc.counter({"__name__": "vllm:prompt_tokens_total", **base}, t, st.prompt_tokens, reset)
    acc.counter({"__name__": "vllm:generation_tokens_total", **base}, t, st.generation_tokens, reset)
    acc.counter({"__name__": "vllm:num_preemptions_total", **base}, t, st.preemptions, reset)
    for p in prof.prefix:
        acc.counter({"__name__": f"vllm:{p}prefix_cache_queries_total", **base}, t, st.prefix_queries, reset)
        acc.counter({"__name__": f"vllm:{p}prefix_cache_hits_total", **base}, t, st.prefix_hits, reset)
    _hist(acc, "vllm:time_to_first_token_seconds", base, b["ttft"], st.hists["ttft"], t, reset)
    for name in prof.itl:
        _hist(acc, name, base, b["itl"], st.itl_steps or st.hists["itl"], t, reset)
    _hist(acc, "vllm:e2e_request_latency_seconds", base, b["e2e"], st.hists["e2e"], t, reset)
    _hist(acc, "vllm:request_queue_time_seconds", base, b["queue"], st.hists["queue"], t, reset)
    _hist(acc, "vllm:request_prompt_tokens", base, b["tokens"], st.hists["prompt"], t, reset)
    _hist(acc, "vllm:request_generation_tokens", base, b["tokens"], st.hists["gen"], t, reset)
    _vllm_surfaces(acc, base, st, t, reset)


def _vllm_surfaces(acc, base, st: Step, t, reset) -> None:
    """Speculative-decoding counters and NIXL transfer series (on the KV consumer, the decode pod), as vLLM
    names them."""
    sf = st.surfaces
    for key, name in (("spec_drafts", "vllm:spec_decode_num_drafts_total"),
                      ("spec_draft_tokens", "vllm:spec_decode_num_draft_tokens_total"),
                      ("spec_accepted", "vllm:spec_decode_num_accepted_tokens_total"),
                      ("kv_transfer_seconds", "vllm:nixl_xfer_time_seconds_sum"),
                      ("kv_transfers", "vllm:nixl_xfer_time_seconds_count"),
                      ("kv_transfer_bytes", "vllm:nixl_bytes_transferred_sum"),
                      ("kv_transfer_failed", "vllm:nixl_num_failed_transfers_total")):
        if key in sf:
            acc.counter({"__name__": name, **base}, t, sf[key], reset)
    if "kv_transfer_queue" in sf:
        acc.gauge({"__name__": "vllm:num_requests_kv_fetch_by_stage", **base, "stage": "in_progress"}, t,
                  sf["kv_transfer_queue"])


def _sglang_scheduler(acc, prof: Profile, sched_base, pod: Pod, st: Step, t, reset, hit: float) -> None:
    """One DP rank's scheduler series, repeated by each of its TP ranks."""
    b = BUCKETS["sglang"]
    ranks = []
    for r in range(max(1, pod.tp) if prof.sched_labels else 1):  # without rank labels one rank reports
        labels = dict(sched_base)
        for name in prof.sched_labels:
            labels[name] = str(r) if name == "tp_rank" else "0"
        ranks.append(labels)
    for labels in ranks:  # every TP rank reports the same scheduler values
        acc.gauge({"__name__": "sglang:num_running_reqs", **labels}, t, st.running)
        acc.gauge({"__name__": "sglang:num_queue_reqs", **labels}, t, st.waiting)
        acc.gauge({"__name__": "sglang:token_usage", **labels}, t, st.kv_usage)
        acc.gauge({"__name__": "sglang:cache_hit_rate", **labels}, t, hit)
        acc.gauge({"__name__": "sglang:gen_throughput", **labels}, t, st.generation_tokens / st.dt if st.dt else 0.0)
        _sglang_surfaces(acc, prof, labels, st, t, reset)
        if prof.retract == "counter":
            acc.counter({"__name__": "sglang:num_retracted_requests_total", **labels}, t, st.preemptions, reset)
        if prof.retract:
            acc.gauge({"__name__": "sglang:num_retracted_reqs", **labels, "pid": "4242"}, t,
                      round(st.preemptions / st.dt * 5) if st.dt else 0)
        if prof.queue_hist:
            _hist(acc, "sglang:queue_time_seconds", labels, b["queue"], st.hists["queue"], t, reset)


def _sglang_surfaces(acc, prof: Profile, labels, st: Step, t, reset) -> None:
    """Speculative-decoding gauges (the last period's acceptance), PD transfer series and LoRA pool
    slots, as SGLang names them."""
    sf = st.surfaces
    drafts, draft_tokens = sf.get("spec_drafts", 0.0), sf.get("spec_draft_tokens", 0.0)
    spec = {"sglang:spec_accept_rate": sf.get("spec_accepted", 0.0) / draft_tokens if draft_tokens else 0.0,
            "sglang:spec_accept_length": 1 + sf.get("spec_accepted", 0.0) / drafts if drafts else 0.0}
    for name in prof.spec_gauges:
        acc.gauge({"__name__": name, **labels}, t, spec[name])
    for key, name, scale in (("kv_transfer_seconds", "sglang:kv_transfer_latency_ms_sum", 1000.0),
                             ("kv_transfers", "sglang:kv_transfer_latency_ms_count", 1.0),
                             ("kv_transfer_bytes", "sglang:kv_transfer_total_mb_sum", 2.0 ** -20),
                             ("kv_transfers", "sglang:kv_transfer_total_mb_count", 1.0),
                             ("kv_transfer_failed", "sglang:num_transfer_failed_reqs_total", 1.0)):
        if key in sf:
            acc.counter({"__name__": name, **labels}, t, sf[key] * scale, reset)
    if "kv_transfer_queue" in sf:
        acc.gauge({"__name__": "sglang:num_decode_transfer_queue_reqs", **labels}, t, sf["kv_transfer_queue"])
    if sf.get("lora_max", 0) > 0:
        acc.gauge({"__name__": "sglang:lora_pool_slots_used", **labels}, t, float(len(st.adapters[0])))
        acc.gauge({"__name__": "sglang:lora_pool_slots_total", **labels}, t, sf["lora_max"])


def _sglang_tokenizer(acc, prof: Profile, tok, st: Step, t, reset) -> None:
    """The tokenizer manager's series: one process per pod, so never split by DP rank."""
    b = BUCKETS["sglang"]
    tl = dict(tok)
    if prof.streaming_label:
        tl["is_streaming"] = "true"
    acc.counter({"__name__": "sglang:num_requests_total", **tl}, t, st.requests, reset)
    acc.counter({"__name__": "sglang:prompt_tokens_total", **tl}, t, st.prompt_tokens, reset)
    acc.counter({"__name__": "sglang:generation_tokens_total", **tl}, t, st.generation_tokens, reset)
    cached = {**tok, "cache_source": "total"} if prof.streaming_label else dict(tok)
    acc.counter({"__name__": "sglang:cached_tokens_total", **cached}, t, st.prefix_hits, reset)
    if prof.aborted:
        acc.counter({"__name__": "sglang:num_aborted_requests_total", **tok}, t,
                    st.finished["abort"] + st.finished["error"], reset)
    _hist(acc, "sglang:time_to_first_token_seconds", tl, b["ttft"], st.hists["ttft"], t, reset)
    _hist(acc, "sglang:inter_token_latency_seconds", tok, b["itl"], st.hists["itl"], t, reset)
    _hist(acc, "sglang:e2e_request_latency_seconds", tl, b["e2e"], st.hists["e2e"], t, reset)
    if prof.token_hist:
        _hist(acc, "sglang:prompt_tokens_histogram", tok, b["tokens"], st.hists["prompt"], t, reset)
        _hist(acc, "sglang:generation_tokens_histogram", tok, b["tokens"], st.hists["gen"], t, reset)


def gpu_labels(sc: Scenario, m: ModelSpec, pod: Pod, g: int, attached: bool) -> dict[str, str]:
    """dcgm-exporter's labels for GPU `g` of a pod's node, in the scenario's label layout; a GPU no pod
    uses carries no pod labels (dcgm-exporter's pod mapping only names pods holding the device)."""
    host_label = "hostname" if sc.dcgm == "hostname-lower" else "Hostname"
    labels = {"gpu": str(g), "UUID": f"GPU-{zlib.crc32(f'{pod.name}/{g}'.encode()):08x}",
              "device": f"nvidia{g}", "modelName": "NVIDIA H100 80GB HBM3", host_label: pod.node,
              "pci_bus_id": f"00000000:{g + 1:02X}:00.0", "job": "dcgm-exporter",
              "instance": f"{pod.node}:9400"}
    if not attached:
        if sc.dcgm != "honor":
            labels.update({"namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{pod.node}"})
        return labels
    labels["container"] = "vllm" if sc.engine == "vllm" else "sglang"
    if sc.dcgm == "honor":
        labels.update({"namespace": m.labels.get("namespace", ""), "pod": pod.name})
    else:
        labels.update({"namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{pod.node}",
                       "exported_namespace": m.labels.get("namespace", ""), "exported_pod": pod.name})
    return labels


def emit_gpus(acc: _Acc, sc: Scenario, m: ModelSpec, pod: Pod, gpus: list[tuple[int, bool, dict[str, float]]],
              t: float) -> None:
    """dcgm-exporter's series for (index, attached to the pod, values) of each GPU."""
    for g, attached, v in gpus:
        labels = gpu_labels(sc, m, pod, g, attached)
        for name, value in (("DCGM_FI_PROF_GR_ENGINE_ACTIVE", v["engine_active"]),
                            ("DCGM_FI_DEV_GPU_UTIL", min(100.0, v["engine_active"] * 100 + 20)
                             if v["engine_active"] > 0.01 else 0.0),
                            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", v["tensor_active"]),
                            ("DCGM_FI_PROF_DRAM_ACTIVE", v["dram_active"]),
                            ("DCGM_FI_DEV_FB_USED", v["fb_used"]), ("DCGM_FI_DEV_FB_FREE", v["fb_total"] - v["fb_used"]),
                            ("DCGM_FI_DEV_POWER_USAGE", v["power"]), ("DCGM_FI_DEV_GPU_TEMP", v["temperature"]),
                            ("DCGM_FI_DEV_SM_CLOCK", v["sm_clock"]), ("DCGM_FI_DEV_XID_ERRORS", v["xid"]),
                            ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", v["remapped_rows"]),
                            ("DCGM_FI_DEV_ROW_REMAP_FAILURE", v["row_remap_failure"])):
            acc.gauge({"__name__": name, **labels}, t, value)
