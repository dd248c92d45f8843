"""What each failure means, written once: the catalog both pipelines read.

A failure mode is a diagnosis cause (its id is the cause id `diagnose` reports, a node of
inferwatch/diagnose/graph.py). It names the alerts that stand for it, its remedy per backend (one text,
used by the runbooks, the alerts and the diagnosis report), the inhibition it implies (routing derives its
inhibit rules from it), and the thresholds where an alert and the diagnosis test the same condition.

Why an alert and the diagnosis may use different numbers for one condition: an alert fires on its own,
with no symptom confirmed, so it must stay quiet on a busy but healthy pod (higher bar); the diagnosis
looks for what contributes to a symptom that is already there (lower bar). The rule kept in both
directions: every condition an alert fires on is also seen by the diagnosis (`SharedThreshold.holds`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BACKEND_TITLES = {"any": "Any backend", "vllm": "vLLM", "sglang": "SGLang"}


@dataclass(frozen=True)
class Inhibition:
    """While one of `by` fires, the other alerts of `tier` on the same pod are silenced, except `spare`."""
    by: tuple[str, ...]
    tier: Literal["pod", "gpu"]
    spare: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SharedThreshold:
    """One condition tested by an alert (`alerts.<alert_key>`) and by the diagnosis
    (`diagnose.thresholds.<diagnose_key>`), in the direction `op`."""
    alert_key: str
    diagnose_key: str
    op: Literal[">", "<"]

    def holds(self, alert_value: float, diagnose_value: float) -> bool:
        """True when the diagnosis sees every value the alert fires on."""
        return diagnose_value <= alert_value if self.op == ">" else diagnose_value >= alert_value


@dataclass(frozen=True)
class FailureMode:
    id: str
    alerts: tuple[str, ...]
    remedies: dict[str, tuple[str, ...]]  # any | vllm | sglang -> what to do, most useful first
    inhibits: Inhibition | None = None
    thresholds: tuple[SharedThreshold, ...] = ()

    def remedy_text(self) -> str:
        """The remedies as one line (reports, chat): shared advice first, then per backend."""
        parts = [f"{'; '.join(self.remedies['any'])}."] if "any" in self.remedies else []
        parts += [f"{BACKEND_TITLES[b]}: {'; '.join(r)}." for b, r in self.remedies.items() if b != "any"]
        if "any" in self.remedies:
            parts[0] = parts[0][0].upper() + parts[0][1:]
        return " ".join(parts).replace("`", "")


VLLM_KV = ("raise `--gpu-memory-utilization` (more KV blocks)",
           "lower `--max-num-seqs` or `--max-num-batched-tokens`", "add tensor/pipeline parallelism or replicas")
SGLANG_KV = ("raise `--mem-fraction-static`", "lower `--max-running-requests`", "lower `--chunked-prefill-size`",
             "raise `--schedule-conservativeness` if retractions repeat")
QUEUE = SharedThreshold("queue_waiting", "waiting_requests", ">")

FAILURES: tuple[FailureMode, ...] = (
    FailureMode("queue_backlog", ("LLMPodQueueBacklog",),
                {"any": ("add replicas", "check which cause below explains the queue"),
                 "vllm": ("raise `--max-num-seqs` if the KV cache has room",),
                 "sglang": ("raise `--max-running-requests` if token usage < 0.9",
                            "lower `--schedule-conservativeness` when the queue grows with token usage < 0.9")},
                thresholds=(QUEUE,)),
    FailureMode("kv_cache_pressure", ("LLMPodKVCacheSaturated", "LLMPodPreemptionStorm"),
                {"vllm": VLLM_KV, "sglang": SGLANG_KV},
                thresholds=(SharedThreshold("kv_cache_usage", "kv_cache_usage", ">"),
                            SharedThreshold("preemption_rate", "preemptions_per_second", ">"))),
    FailureMode("prefix_cache_miss", ("LLMPodPrefixCacheHitRatioCollapse",),
                {"any": ("look for a changed system prompt or template, or a routing change that broke prefix "
                         "affinity", "check cache evictions (KV usage) on the pods named", "use prefix-aware routing"),
                 "vllm": ("keep `--enable-prefix-caching` on",),
                 "sglang": ("do not disable the radix cache (`--disable-radix-cache`)",)}),
    FailureMode("long_prompts", ("LLMModelRequestLengthShift",),
                {"any": ("find the client sending longer prompts", "route long prompts to a separate pool"),
                 "vllm": ("lower `--max-num-batched-tokens` to protect inter-token latency",),
                 "sglang": ("lower `--chunked-prefill-size` to protect inter-token latency",)}),
    # The batch grows because generations got longer (or traffic rose: traffic_surge): the alert an SRE
    # tickets for it is the generation-length shift. No alert on the batch size itself: it is a mechanism
    # (diagnose/ranking.py MECHANISMS) that grows on every healthy traffic peak too.
    FailureMode("large_decode_batch", ("LLMModelRequestLengthShift",),
                {"any": ("add replicas",),
                 "vllm": ("cap concurrency with `--max-num-seqs` to trade throughput for inter-token latency",),
                 "sglang": ("cap concurrency with `--max-running-requests`",)}),
    FailureMode("load_imbalance", ("LLMPodLoadImbalance",),
                {"any": ("check the router / gateway: prefer queue- and KV-aware endpoint picking over round-robin",
                         "look for sticky sessions pinning traffic", "check the slow pod's GPU alerts")}),
    FailureMode("traffic_surge", ("LLMModelTrafficSurge",),
                {"any": ("scale out (HPA on queue length)", "rate-limit the client that grew")}),
    FailureMode("replica_unavailable", ("LLMPodTargetDown", "LLMPodRestarted", "LLMModelServingAbsent",
                                        "LLMModelReplicasLost"),
                {"any": ("`kubectl describe` and `kubectl logs --previous` on the pod named: OOMKilled, crash loop, "
                         "eviction or node failure", "check GPU XIDs on its node",
                         "check the PodMonitor port name (`scrape.port`)", "roll back the last rollout"),
                 "vllm": ("lower `--gpu-memory-utilization` or `--max-num-seqs` after an OOM",),
                 "sglang": ("lower `--mem-fraction-static` or `--chunked-prefill-size` after an OOM",)},
                Inhibition(("LLMPodTargetDown",), "pod", ("LLMPodTargetDown",),
                           "A pod whose target is down explains every other pod-tier cause alert of that pod "
                           "(stale or missing series); its GPU alerts stay, they may be why it is down.")),
    FailureMode("spec_acceptance_drop", ("LLMPodSpecDecodeAcceptanceDrop",),
                {"any": ("check the traffic mix (a new language, task or sampling temperature), the draft model "
                         "and its version", "turn speculation off for this traffic if acceptance stays low"),
                 "vllm": ("lower `num_speculative_tokens`",),
                 "sglang": ("lower `--speculative-num-draft-tokens`",)}),
    FailureMode("kv_transfer_slow", ("LLMPodKVTransferFailing",),
                {"any": ("check the RDMA/UCX path between the prefill and decode roles (NIC errors, MTU, "
                         "security groups) and a restarted peer", "compare with the decode pods' TTFT and restarts",
                         "drain the node with the failing NIC"),
                 "vllm": ("check UCX/NIXL logs on both roles (`UCX_LOG_LEVEL=info`)",
                          "raise `VLLM_NIXL_ABORT_REQUEST_TIMEOUT` if blocks expire under load"),
                 "sglang": ("check `--disaggregation-ib-device`, the bootstrap server and its port",
                            "raise `SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT` / `..._WAITING_TIMEOUT` under load")},
                thresholds=(SharedThreshold("kv_transfer_failure_rate", "kv_transfer_failures_per_second", ">"),)),
    FailureMode("lora_slots_exhausted", ("LLMPodLoRASlotsExhausted",),
                {"any": ("route each adapter to fewer pods, or merge hot adapters",),
                 "vllm": ("raise `--max-loras`",),
                 "sglang": ("raise `--max-loras-per-batch`",)}),
    FailureMode("gpu_hardware_fault", ("LLMGPUXidError", "LLMGPUEccOrRowRemapFailure"),
                {"any": ("cordon the node and restart the pod elsewhere",
                         "look the XID up in NVIDIA's XID catalog (79 = fallen off the bus, 48 = double-bit ECC; "
                         "13/31 are application errors: a pod restart is enough)",
                         "a failed row remap or repeated uncorrectable errors need a GPU reset and a hardware ticket")},
                Inhibition(("LLMGPUXidError", "LLMGPUEccOrRowRemapFailure"), "pod", ("LLMPodTargetDown",),
                           "A GPU hardware fault (XID, uncorrectable ECC, failed row remap) explains the latency "
                           "cause alerts of the pod on that GPU; the pod's target-down alert stays, it says the "
                           "pod is gone.")),
    FailureMode("gpu_throttling", ("LLMGPUThrottled",),
                {"any": ("check node cooling and power capping (`nvidia-smi -q -d PERFORMANCE`)",
                         "read the clock-event reasons (DCGM_EXP_CLOCK_EVENTS_COUNT)", "move the workload off the node")}),
    FailureMode("gpu_memory_pressure", ("LLMGPUFramebufferNearlyFull",),
                {"any": ("look for another process on the GPU",),
                 "vllm": ("lower `--gpu-memory-utilization`",),
                 "sglang": ("lower `--mem-fraction-static`, `--chunked-prefill-size` or `--max-running-requests`",)},
                thresholds=(SharedThreshold("gpu_fb_used_ratio", "fb_used_ratio", ">"),)),
    FailureMode("gpu_compute_saturation", ("LLMGPUComputeSaturated",),
                {"any": ("add replicas or GPUs (a larger tensor-parallel size)",
                         "check for another workload sharing the GPU")},
                thresholds=(SharedThreshold("gpu_compute_active", "engine_saturated", ">"),)),
    FailureMode("host_bottleneck", ("LLMGPUIdleWhileQueued",),
                {"any": ("check CPU throttling and limits of the pod, tokenizer / detokenizer load and multimodal "
                         "preprocessing", "give the pod more CPU"),
                 "vllm": ("raise `--api-server-count`",),
                 "sglang": ("raise `--tokenizer-worker-num`",)},
                thresholds=(SharedThreshold("gpu_idle_active", "engine_idle", "<"), QUEUE)),
)

BY_ID = {f.id: f for f in FAILURES}
BY_ALERT: dict[str, tuple[FailureMode, ...]] = {}  # alert -> the causes it stands for (a length shift: two)
for _f in FAILURES:
    for _a in _f.alerts:
        BY_ALERT[_a] = BY_ALERT.get(_a, ()) + (_f,)
