"""The diagnosis graph as data: symptoms and causes with their tier, detector and advice.

Edges read "parent can be caused by child". The walk starts at anomalous model symptoms and descends
only into anomalous causes; a cause with no anomalous (and earlier) cause beneath it is a root cause.
Node ids are the public vocabulary of the JSON output (docs/diagnose.md): keep them stable.
What each cause means and what to do about it: inferwatch/core/failures.py (one entry per cause id).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx

from ..core import failures
from ..core.schema import Tier

from .detectors import Check, Rule, all_of, any_of, not_



@dataclass(frozen=True)
class Node:
    id: str
    kind: Literal["symptom", "cause"]
    tier: Tier
    title: str
    detector: Rule
    reach: Literal["same", "model"] = "same"  # "model": explains effects on any pod of the same model
    weight: float = 1.0  # how specific the evidence is (a ranking prior, 0-1)


def _latency(signal: str, threshold: str, delta: float) -> Rule:
    return any_of(Check(signal, ">", "threshold", threshold),
                  Check(signal, ">", "baseline", factor="change_factor", delta=delta))


NODES: tuple[Node, ...] = (
    # ---- model symptoms ------------------------------------------------------------------
    Node("ttft_high", "symptom", "model", "time to first token is high", _latency("ttft", "ttft_seconds", 0.1)),
    Node("itl_high", "symptom", "model", "inter-token latency is high", _latency("itl", "itl_seconds", 0.01)),
    Node("e2e_latency_high", "symptom", "model", "end-to-end latency is high", _latency("e2e", "e2e_seconds", 1.0)),
    Node("error_rate_high", "symptom", "model", "requests are failing",
         any_of(Check("error_ratio", ">", "threshold", "error_ratio"),
                Check("error_ratio", ">", "baseline", factor=2.0, delta=0.01))),
    Node("throughput_drop", "symptom", "model", "generated tokens per second dropped",
         Check("generation_rate", "<", "baseline", factor="change_factor")),
    # ---- pod causes ---------------------------------------------------------------------------
    Node("queue_backlog", "cause", "pod", "requests queue in the engine",
         all_of(Check("waiting", ">", "threshold", "waiting_requests"),
                Check("waiting", ">", "baseline", factor="change_factor", delta=1.0)), weight=0.7),
    Node("kv_cache_pressure", "cause", "pod", "KV cache is full and requests are preempted",
         all_of(Check("kv_usage", ">", "threshold", "kv_cache_usage"),
                Check("preemptions", ">", "threshold", "preemptions_per_second"))),
    Node("prefix_cache_miss", "cause", "pod", "prefix-cache hit ratio dropped",
         any_of(Check("prefix_hit", "<", "baseline", factor="change_factor", delta=0.05),
                Check("prefix_hit", "<", "siblings", factor="sibling_factor", delta=0.05))),
    # Prompt tokens / finished requests: recorded, and every version has the counters (the length
    # histogram's mean, rebuilt at query time, read the same and cost ten times more at 1,000 pods).
    Node("long_prompts", "cause", "pod", "prompts got longer",
         Check("prompt_per_request", ">", "baseline", factor="change_factor", delta=50.0)),
    Node("large_decode_batch", "cause", "pod", "the running batch grew",
         Check("running", ">", "baseline", factor="change_factor", delta=2.0)),
    # Demand is read as arrivals (finished + growth of running and waiting): the finished rate of a full
    # batch cannot rise, however many requests arrive.
    Node("load_imbalance", "cause", "pod", "one pod gets more traffic than its siblings",
         Check("arrival_rate", ">", "siblings", factor="sibling_factor", delta=0.1), reach="model"),
    Node("traffic_surge", "cause", "pod", "request rate rose on every pod",
         all_of(Check("arrival_rate", ">", "baseline", factor="change_factor", delta=0.1),
                not_(Check("arrival_rate", ">", "siblings", factor="sibling_factor", delta=0.1))), weight=0.8),
    Node("replica_unavailable", "cause", "pod", "a serving pod disappeared",
         Check("present", "!=", "vanished"), reach="model"),
    Node("spec_acceptance_drop", "cause", "pod", "speculative-decoding acceptance dropped",
         Check("spec_accept", "<", "baseline", factor="change_factor", delta=0.05)),
    Node("kv_transfer_slow", "cause", "pod", "prefill-to-decode KV transfers are slow or failing",
         any_of(Check("kv_transfer_failures", ">", "threshold", "kv_transfer_failures_per_second"),
                Check("kv_transfer_time", ">", "baseline", factor="change_factor", delta=0.01)),
         reach="model"),
    Node("lora_slots_exhausted", "cause", "pod", "every LoRA adapter slot is in use and requests wait for one",
         Check("lora_starved", ">", "threshold", 0.0)),
    # ---- GPU causes ---------------------------------------------------------------------------
    Node("gpu_hardware_fault", "cause", "gpu", "the GPU reports a hardware error",
         any_of(all_of(Check("xid", "!=", "baseline"), Check("xid", ">", "threshold", 0.0)),
                # a count: above its baseline implies above 0, and the cheap threshold goes first
                all_of(Check("remapped_rows", ">", "threshold", 0.0), Check("remapped_rows", ">", "baseline", factor=1.0)),
                Check("row_remap_failure", ">", "threshold", 0.0),
                Check("ecc_dbe", ">", "threshold", 0.0)), weight=1.0),
    Node("gpu_throttling", "cause", "gpu", "the GPU clock dropped (thermal or power throttling)",
         any_of(Check("sm_clock", "<", "baseline", factor=1.15, delta=50.0),
                Check("sm_clock", "<", "siblings", factor=1.15, delta=50.0),
                Check("throttle", ">", "threshold", 0.05))),
    Node("gpu_memory_pressure", "cause", "gpu", "GPU memory is exhausted",
         all_of(Check("fb_used", ">", "threshold", "fb_used_ratio"),
                Check("fb_used", ">", "baseline", factor=1.0, delta=0.02))),
    Node("gpu_compute_saturation", "cause", "gpu", "the GPU compute engine is saturated",
         all_of(Check("engine_active", ">", "threshold", "engine_saturated"),
                Check("engine_active", ">", "baseline", factor=1.2)), weight=0.7),
    Node("host_bottleneck", "cause", "gpu", "the GPU idles while requests wait (CPU-bound engine)",
         all_of(Check("engine_active", "<", "threshold", "engine_idle"),
                Check("engine_active", "<", "baseline", factor="change_factor"),
                Check("waiting", ">", "threshold", "waiting_requests"))),
)

# parent -> children ("can be caused by")
EDGES: dict[str, tuple[str, ...]] = {
    "ttft_high": ("queue_backlog", "kv_cache_pressure", "prefix_cache_miss", "long_prompts", "gpu_throttling",
                  "gpu_hardware_fault", "host_bottleneck", "gpu_compute_saturation", "kv_transfer_slow",
                  "lora_slots_exhausted"),
    "itl_high": ("kv_cache_pressure", "large_decode_batch", "long_prompts", "gpu_throttling", "gpu_hardware_fault",
                 "host_bottleneck", "gpu_compute_saturation", "spec_acceptance_drop"),
    "e2e_latency_high": ("queue_backlog", "kv_cache_pressure", "large_decode_batch", "long_prompts",
                         "prefix_cache_miss", "gpu_throttling", "gpu_hardware_fault", "host_bottleneck",
                         "gpu_compute_saturation", "spec_acceptance_drop", "kv_transfer_slow"),
    # requests starved of a LoRA slot wait past their clients' timeout and are aborted
    "error_rate_high": ("gpu_hardware_fault", "gpu_memory_pressure", "replica_unavailable", "kv_transfer_slow",
                        "lora_slots_exhausted"),
    "throughput_drop": ("replica_unavailable", "gpu_hardware_fault", "gpu_throttling", "host_bottleneck",
                        "spec_acceptance_drop"),
    "queue_backlog": ("kv_cache_pressure", "traffic_surge", "load_imbalance", "replica_unavailable", "long_prompts",
                      "prefix_cache_miss", "large_decode_batch", "gpu_throttling", "gpu_hardware_fault",
                      "host_bottleneck", "gpu_compute_saturation", "lora_slots_exhausted"),
    # KV fills when requests hold it longer too: a slower GPU or host keeps every request in the batch.
    "kv_cache_pressure": ("long_prompts", "large_decode_batch", "traffic_surge", "gpu_throttling", "host_bottleneck",
                          "gpu_compute_saturation"),
    # Little's law: anything that keeps requests in the batch longer grows it (slower iterations,
    # more prefill work per step) as surely as more arrivals do, a lost replica's traffic on the survivors too.
    "large_decode_batch": ("traffic_surge", "load_imbalance", "long_prompts", "prefix_cache_miss", "gpu_throttling",
                           "host_bottleneck", "spec_acceptance_drop", "replica_unavailable"),
    "traffic_surge": ("replica_unavailable",),
    "gpu_compute_saturation": ("long_prompts", "large_decode_batch", "traffic_surge", "load_imbalance"),
    "replica_unavailable": ("gpu_hardware_fault", "gpu_memory_pressure"),
}

BY_ID = {n.id: n for n in NODES}
SYMPTOMS = tuple(n.id for n in NODES if n.kind == "symptom")
CAUSES = tuple(n.id for n in NODES if n.kind == "cause")


def build() -> nx.DiGraph:
    """The graph: node attribute `node` holds the Node; raises if an edge names an unknown node or
    the graph has a cycle (the walk relies on a DAG)."""
    g = nx.DiGraph()
    for n in NODES:
        g.add_node(n.id, node=n)
    for parent, children in EDGES.items():
        for child in children:
            if parent not in BY_ID or child not in BY_ID:
                raise ValueError(f"edge {parent} -> {child}: unknown node")
            if BY_ID[child].kind != "cause":
                raise ValueError(f"edge {parent} -> {child}: a symptom cannot be a cause")
            g.add_edge(parent, child)
    if missing := [c for c in CAUSES if c not in failures.BY_ID]:
        raise ValueError(f"causes without a failure mode in core/failures.py: {', '.join(missing)}")
    if not nx.is_directed_acyclic_graph(g):
        raise ValueError(f"the diagnosis graph has a cycle: {nx.find_cycle(g)}")
    return g
