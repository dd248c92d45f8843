"""The normalized series schema: one vocabulary for every backend.

A signal is what an SRE reasons about (queue length, TTFT, KV-cache usage); backend catalogs say where
each engine exposes it. Record names follow `level:metric:operations` with the levels `llm_pod`,
`llm_model` and `llm_gpu`, so they can never collide with the engines' own `vllm:` / `sglang:` names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tier = Literal["pod", "gpu"]
Kind = Literal["counter", "gauge", "histogram", "ratio"]

POD, MODEL, GPU = "llm_pod", "llm_model", "llm_gpu"


@dataclass(frozen=True)
class Signal:
    name: str
    tier: Tier
    kind: Kind
    unit: str
    help: str
    agg: Literal["sum", "max"] = "sum"  # how a pod combines engines/ranks (gauges); counters always sum
    keep: tuple[str, ...] = ()  # signal-specific labels kept in aggregations
    derived: bool = False  # computed from other records; catalogs may still give a direct fallback
    inputs: tuple[str, ...] = ()  # the signals a derived one is computed from
    formula: str = ""  # how, in words, for the schema reference
    offset: float = 0.0  # added to inputs[0] / inputs[1] (the bonus token of a speculative verify step)


SIGNALS: tuple[Signal, ...] = (
    # pod tier: traffic
    Signal("requests", "pod", "counter", "requests/s", "Finished requests per second (every finish reason)."),
    Signal("requests_finished", "pod", "counter", "requests/s", "Finished requests per second by finish reason.",
           keep=("finished_reason",)),
    Signal("requests_arrived", "pod", "counter", "requests/s",
           "Requests arriving per second: those that finished plus the growth of running + waiting (no engine "
           "counts arrivals; finished requests cannot outgrow a full batch, arrivals can).", derived=True,
           inputs=("requests", "requests_running", "requests_waiting"),
           formula="finished/s + deriv(running + waiting), at least 0"),
    Signal("request_errors", "pod", "counter", "requests/s",
           "Failed requests per second by `reason` (engine_error, abort, http_5xx).",
           keep=("reason",)),
    Signal("prompt_tokens", "pod", "counter", "tokens/s", "Prompt (prefill) tokens per second."),
    Signal("generation_tokens", "pod", "counter", "tokens/s", "Generated tokens per second."),
    # pod tier: saturation
    Signal("requests_running", "pod", "gauge", "requests", "Requests in the running batch.", agg="sum"),
    Signal("requests_waiting", "pod", "gauge", "requests", "Requests waiting in the queue.", agg="sum"),
    Signal("kv_cache_usage", "pod", "gauge", "ratio", "KV-cache usage, 0-1 (the fullest engine/rank).", agg="max"),
    Signal("preemptions", "pod", "counter", "requests/s",
           "Preempted (vLLM) or retracted (SGLang) requests per second."),
    Signal("prefix_cache_queries", "pod", "counter", "tokens/s", "Prompt tokens looked up in the prefix cache."),
    Signal("prefix_cache_hits", "pod", "counter", "tokens/s", "Prompt tokens served from the prefix cache."),
    Signal("prefix_cache_hit", "pod", "ratio", "ratio", "Prefix-cache hit ratio, hits / queries.", derived=True,
           inputs=("prefix_cache_hits", "prefix_cache_queries"), formula="hits / queries"),
    Signal("prompt_tokens_per_request", "pod", "ratio", "tokens",
           "Mean prompt tokens per finished request, from the token and request counters (every version; the "
           "length histogram needs SGLang >= 0.4.6 and a flag).", derived=True,
           inputs=("prompt_tokens", "requests"), formula="prompt tokens / finished requests"),
    Signal("kv_transfer_failures", "pod", "counter", "requests/s",
           "Prefill/decode KV transfer or bootstrap failures per second (disaggregated serving).",
           keep=("reason",)),
    Signal("kv_transfer_queue", "pod", "gauge", "requests",
           "Requests waiting on a KV transfer between prefill and decode.", agg="sum"),
    # pod tier: prefill/decode KV transfer (disaggregated serving)
    Signal("kv_transfers", "pod", "counter", "transfers/s",
           "KV-cache transfers per second (vLLM NIXL: per TP rank, not per request)."),
    Signal("kv_transfer_time", "pod", "counter", "s/s",
           "Seconds spent in KV transfers per second; divided by kv_transfers: the mean transfer time."),
    Signal("kv_transfer_bytes", "pod", "counter", "bytes/s", "KV-cache bytes transferred per second."),
    Signal("kv_transfer_timeouts", "pod", "counter", "requests/s",
           "Requests whose KV blocks expired before the peer fetched them (a transfer timeout)."),
    Signal("kv_bootstrap_queue", "pod", "gauge", "requests",
           "Prefill requests waiting to pair with a decode peer (SGLang bootstrap queue).", agg="sum"),
    Signal("kv_prealloc_queue", "pod", "gauge", "requests",
           "Decode requests waiting for KV memory before their transfer (SGLang pre-allocation queue).",
           agg="sum"),
    # pod tier: speculative decoding
    Signal("spec_drafts", "pod", "counter", "drafts/s", "Speculative drafts proposed per second."),
    Signal("spec_draft_tokens", "pod", "counter", "tokens/s", "Draft tokens proposed per second."),
    Signal("spec_accepted_tokens", "pod", "counter", "tokens/s", "Draft tokens accepted per second."),
    Signal("spec_accept_rate", "pod", "ratio", "ratio",
           "Draft-token acceptance rate, accepted / draft tokens.", derived=True,
           inputs=("spec_accepted_tokens", "spec_draft_tokens"), formula="accepted / draft tokens"),
    Signal("spec_accept_length", "pod", "ratio", "tokens",
           "Mean acceptance length, 1 + accepted tokens / drafts (tokens emitted per verify step).", derived=True,
           inputs=("spec_accepted_tokens", "spec_drafts"), formula="1 + accepted tokens / drafts", offset=1.0),
    # pod tier: LoRA adapters
    Signal("lora_adapters_running", "pod", "gauge", "adapters",
           "LoRA adapters in use (vLLM: in the running batch; SGLang: loaded pool slots).", agg="max"),
    Signal("lora_adapters_waiting", "pod", "gauge", "adapters",
           "LoRA adapters that waiting requests need (vLLM).", agg="max"),
    Signal("lora_adapters_max", "pod", "gauge", "adapters",
           "LoRA adapter slots (vLLM --max-loras; SGLang pool slots).", agg="max"),
    # pod tier: latency and length distributions
    Signal("ttft_seconds", "pod", "histogram", "seconds", "Time to first token."),
    Signal("itl_seconds", "pod", "histogram", "seconds", "Inter-token latency."),
    Signal("e2e_latency_seconds", "pod", "histogram", "seconds", "End-to-end request latency."),
    Signal("queue_time_seconds", "pod", "histogram", "seconds", "Time a request waits before its first forward pass."),
    Signal("prompt_length_tokens", "pod", "histogram", "tokens", "Prompt length per request."),
    Signal("generation_length_tokens", "pod", "histogram", "tokens", "Generated tokens per request."),
    # GPU tier
    Signal("engine_active", "gpu", "gauge", "ratio",
           "Graphics/compute engine activity, 0-1 (GR_ENGINE_ACTIVE, else GPU_UTIL/100).", agg="max"),
    Signal("sm_active", "gpu", "gauge", "ratio", "SM activity, 0-1 (needs a custom dcgm-exporter CSV).", agg="max"),
    Signal("tensor_active", "gpu", "gauge", "ratio", "Tensor pipe activity, 0-1.", agg="max"),
    Signal("dram_active", "gpu", "gauge", "ratio", "Device memory interface activity, 0-1.", agg="max"),
    Signal("fb_used_mib", "gpu", "gauge", "MiB", "Framebuffer memory used.", agg="max"),
    Signal("fb_free_mib", "gpu", "gauge", "MiB", "Framebuffer memory free.", agg="max"),
    Signal("fb_used", "gpu", "ratio", "ratio", "Framebuffer used / (used + free).", derived=True,
           inputs=("fb_used_mib", "fb_free_mib"), formula="used / (used + free)"),
    Signal("power_watts", "gpu", "gauge", "W", "Power draw.", agg="max"),
    Signal("temperature_celsius", "gpu", "gauge", "°C", "GPU temperature.", agg="max"),
    Signal("sm_clock_mhz", "gpu", "gauge", "MHz", "SM clock.", agg="max"),
    Signal("xid_last", "gpu", "gauge", "XID code", "Value of the last XID error (0 = none); not a count.", agg="max"),
    Signal("xid_errors", "gpu", "gauge", "errors", "XID errors in the exporter's window, by `xid` (custom CSV).",
           agg="max", keep=("xid",)),
    Signal("ecc_dbe_errors", "gpu", "counter", "errors/s", "Double-bit (uncorrectable) volatile ECC errors."),
    Signal("remapped_rows_uncorrectable", "gpu", "gauge", "rows", "Rows remapped after uncorrectable errors.",
           agg="max"),
    Signal("row_remap_failure", "gpu", "gauge", "bool", "1 when row remapping failed (GPU needs service).", agg="max"),
    Signal("clock_events", "gpu", "counter", "events/s",
           "Clock-limiting events by `clock_event` (sw_thermal, hw_slowdown, power_cap, ...; custom CSV).",
           keep=("clock_event",)),
    Signal("throttle", "gpu", "counter", "s/s",
           "Fraction of time throttled, by `reason` (power, thermal, ...; *_VIOLATION counters, custom CSV).",
           keep=("reason",)),
)

BY_NAME = {s.name: s for s in SIGNALS}


def signal(name: str) -> Signal:
    return BY_NAME[name]


def record_names(sig: Signal, level: str, window: str) -> dict[str, str]:
    """Every series name a signal records at a level, keyed by role."""
    w = f"rate{window}"
    if sig.kind == "counter":
        return {"rate": f"{level}:{sig.name}:{w}"}
    if sig.kind == "gauge":
        names = {"value": f"{level}:{sig.name}:{sig.agg}"}
        if level == MODEL and sig.agg == "max":
            names["avg"] = f"{level}:{sig.name}:avg"
        return names
    if sig.kind == "ratio":
        return {"ratio": f"{level}:{sig.name}:ratio_{w}" if sig.tier == "pod" else f"{level}:{sig.name}:ratio"}
    return {
        "bucket": f"{level}:{sig.name}_bucket:{w}",
        "sum": f"{level}:{sig.name}_sum:{w}",
        "count": f"{level}:{sig.name}_count:{w}",
        "quantile": f"{level}:{sig.name}:histogram_quantile_{w}",
        "mean": f"{level}:{sig.name}:mean_{w}",
    }


def info_names() -> dict[str, str]:
    return {"pod": f"{POD}:info", "pod_model": f"{POD}:model:info", "model_pods": f"{MODEL}:pods:count",
            "pod_instance": f"{POD}:instance:info", "gpu_owner": f"{GPU}:owner:info", "gpu": f"{GPU}:info"}
