"""Simulated incidents for the accuracy benchmark: every cause id in several variants, healthy cases,
two concurrent faults, red herrings. Each incident lives in its own namespace, so many share one
Prometheus and `diagnose` is scoped to one namespace at a time.

An incident is model specs for the simulator (inferwatch/sandbox/sim/) plus what a correct diagnosis
names: the cause ids, the pods, and for GPU causes the GPUs. Variants differ in engine profile (vLLM
current and old metric names, SGLang old and new), tensor parallelism (1/2/4), seed, onset (8-15
minutes before the diagnosis time) and ramp (0-5 minutes).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

PROFILES = (("vllm", "0.33"), ("sglang", "0.4.5"), ("vllm", "0.8"), ("sglang", "0.5.23"), ("vllm", "0.11"),
            ("sglang", "0.5.3"))
DURATION_MIN = 85  # one hour of baseline, the 15-minute window, ten minutes of margin before
TPS = (1, 2, 4)


@dataclass
class Incident:
    name: str
    engine: str
    version: str
    models: list[dict]
    causes: dict[str, set[str]] = field(default_factory=dict)  # cause id -> expected entities
    kind: str = "fault"  # fault | healthy | two-faults | red-herring

    @property
    def namespace(self) -> str:
        return self.name


def _pods(prefix: str, n: int, tp: int, engine: str) -> list[dict]:
    return [{"name": f"{prefix}-{i}", "gpus": tp, "node": f"{prefix}-node-{i}",
             **({"tp": tp} if engine == "sglang" else {})} for i in range(n)]


def _gpus(pod: str, tp: int) -> set[str]:
    return {f"{pod}/{g}" for g in range(tp)}


# cause id -> (model overrides, faults, expected entities) given (prefix, tp, onset, ramp). Each baseline
# is healthy under the default objectives (before the onset a model's 1h share of slow or failed requests
# stays under 1%, its worst 5m share under 3%: no burn tier or queue alert has cause to fire), and the
# fault takes it past capacity: a surge or a lost replica on pods with room to spare before it, a throttled
# 32B model loaded to its GPUs' share (1 request/s per GPU of its tensor-parallel group).
def _template(cause: str, p: str, tp: int, at: str, ramp: str, rng: random.Random):
    if cause == "traffic_surge":
        return 3, {"rate": 6.0}, {"max_seqs": 12, "kv_tokens": 200000}, \
            [{"kind": "request_rate", "at": at, "ramp": ramp, "factor": rng.uniform(2.3, 3.0)}], \
            {f"{p}-{i}" for i in range(3)}
    if cause == "load_imbalance":
        return 3, {"rate": 7.0}, {"max_seqs": 12, "kv_tokens": 200000}, \
            [{"kind": "routing_skew", "at": at, "ramp": ramp, "pods": [f"{p}-0"], "factor": rng.uniform(5, 8)}], \
            {f"{p}-0"}
    if cause == "queue_backlog":
        return 2, {"rate": 6.0}, {"max_seqs": 32}, \
            [{"kind": "max_seqs", "at": at, "pods": [f"{p}-1"], "factor": 0.125}], {f"{p}-1"}
    if cause == "large_decode_batch":
        return 2, {"rate": 4.0, "max_tokens": 4096}, {"kv_tokens": 400000}, \
            [{"kind": "generation_length", "at": at, "ramp": ramp, "factor": rng.uniform(2.8, 3.5)}], \
            {f"{p}-0", f"{p}-1"}
    if cause == "kv_cache_pressure":
        return 2, {"rate": 6.0, "generation": 300}, {}, \
            [{"kind": "kv_capacity", "at": at, "pods": [f"{p}-1"], "factor": rng.uniform(0.25, 0.35)}], {f"{p}-1"}
    if cause == "prefix_cache_miss":
        return 2, {"rate": 4.0, "prompt": 8000, "sigma": 0.4, "prefix_reuse": 0.9}, {"kv_tokens": 600000}, \
            [{"kind": "prefix_reuse", "at": at, "ramp": ramp, "pods": [f"{p}-0"], "factor": 0.05}], {f"{p}-0"}
    if cause == "long_prompts":
        return 2, {"rate": 4.0, "prompt": 2000, "prefix_reuse": 0.2}, {"kv_tokens": 1000000}, \
            [{"kind": "prompt_length", "at": at, "ramp": ramp, "factor": rng.uniform(5, 7)}], \
            {f"{p}-0", f"{p}-1"}
    if cause == "replica_unavailable":
        return 3, {"rate": 16.0}, {"max_seqs": 24, "kv_tokens": 200000}, \
            [{"kind": "pod_loss", "at": at, "pods": [f"{p}-2"]}], {f"{p}-2"}
    if cause == "gpu_hardware_fault":
        return 2, {"rate": 6.0}, {}, \
            [{"kind": "xid", "at": at, "pods": [f"{p}-0"], "gpus": [0], "code": rng.choice([48, 79, 94]),
              "errors": rng.uniform(0.3, 0.6)}], {f"{p}-0/0"}
    if cause == "gpu_throttling":
        return 2, {"rate": 1.0 * tp}, {"params_b": 32, "max_seqs": 12, "kv_tokens": 200000}, \
            [{"kind": "thermal", "at": at, "ramp": ramp, "pods": [f"{p}-1"], "celsius": rng.uniform(48, 55)}], \
            _gpus(f"{p}-1", tp)
    if cause == "gpu_memory_pressure":
        return 2, {"rate": 5.0}, {"params_b": 8}, \
            [{"kind": "fb_pressure", "at": at, "ramp": ramp, "pods": [f"{p}-1"], "mib": rng.uniform(7000, 8000)}], \
            _gpus(f"{p}-1", tp)
    if cause == "gpu_compute_saturation":
        return 2, {"rate": 5.0}, {"params_b": 32, "kv_tokens": 200000}, \
            [{"kind": "gpu_contention", "at": at, "ramp": ramp, "pods": [f"{p}-0"], "share": rng.uniform(0.6, 0.75)}], \
            _gpus(f"{p}-0", tp)
    if cause == "host_bottleneck":
        return 2, {"rate": 4.0}, {"params_b": 32, "max_seqs": 32, "kv_tokens": 200000}, \
            [{"kind": "host_overhead", "at": at, "ramp": ramp, "pods": [f"{p}-1"], "seconds": rng.uniform(0.07, 0.1)}], \
            _gpus(f"{p}-1", tp)
    raise KeyError(cause)


CAUSES = ("traffic_surge", "load_imbalance", "queue_backlog", "large_decode_batch", "kv_cache_pressure",
          "prefix_cache_miss", "long_prompts", "replica_unavailable", "gpu_hardware_fault", "gpu_throttling",
          "gpu_memory_pressure", "gpu_compute_saturation", "host_bottleneck")
GPU_CAUSES = {"gpu_hardware_fault", "gpu_throttling", "gpu_memory_pressure", "gpu_compute_saturation",
              "host_bottleneck"}


# Causes a version cannot show, and why: such a variant takes the next profile instead (docs/diagnose.md).
UNOBSERVABLE = {
    ("gpu_memory_pressure", "sglang", "0.4.5"): "the requests that fail for want of GPU memory are counted by no "
    "0.4.5 series (no aborted-requests counter before 0.4.10, no HTTP status counter), so no symptom shows",
}


def _profile(cause: str, i: int) -> tuple[str, str]:
    while (cause, *PROFILES[i % len(PROFILES)]) in UNOBSERVABLE:
        i += 1
    return PROFILES[i % len(PROFILES)]


def _timing(rng: random.Random) -> tuple[str, str]:
    onset = DURATION_MIN - rng.randint(8, 15)
    return f"{onset}m", f"{rng.randint(0, 5)}m"


def _fault_model(cause: str, p: str, tp: int, engine: str, rng: random.Random, model: str) -> tuple[dict, set[str]]:
    at, ramp = _timing(rng)
    n, workload, serving, faults, expect = _template(cause, p, tp, at, ramp, rng)
    workload = {**workload, "rate": workload["rate"] * rng.uniform(0.9, 1.1)}
    serving = {"params_b": 7.0, **serving}
    serving["params_b"] = max(serving["params_b"], 7.0 * tp if tp > 1 else serving["params_b"])
    return ({"model": model, "labels": {"namespace": p, "workload_name": p.split("-")[0], "backend": engine},
             "pods": _pods(p, n, tp, engine), "workload": workload, "serving": serving, "faults": faults},
            expect)


def incidents(seed: int, variants: int = 4) -> list[Incident]:
    """Every cause in `variants` variants, 8 healthy cases, 2 two-fault and 2 red-herring incidents."""
    rng = random.Random(seed)
    out: list[Incident] = []
    for c_i, cause in enumerate(CAUSES):
        for v in range(variants):
            engine, version = _profile(cause, c_i + v)
            tp = TPS[(c_i + v) % len(TPS)]
            name = f"s{seed}-{cause.replace('_', '')[:10]}-{v}"
            model, expect = _fault_model(cause, name, tp, engine, rng, f"m/{cause}")
            out.append(Incident(name, engine, version, [model], {cause: expect}))
    out += feature_incidents(seed, variants)
    out += _healthy(seed, rng)
    out += _composite(seed, rng)
    return out


def _steady(p: str, engine: str, tp: int, rng: random.Random, **workload) -> dict:
    return {"model": f"m/{p}", "labels": {"namespace": p, "workload_name": "w", "backend": engine},
            "pods": _pods(p, 2, tp, engine), "workload": {"rate": 6.0 * rng.uniform(0.8, 1.2), **workload},
            "serving": {"params_b": 7.0 * tp}}


def _healthy(seed: int, rng: random.Random) -> list[Incident]:
    cases = [
        ("drift", {"drift": 0.25}, [], 1),
        ("noise", {"noise": 0.15}, [], 2),
        ("spike", {}, [{"kind": "request_rate", "at": f"{DURATION_MIN - 12}m", "until": f"{DURATION_MIN - 9}m",
                        "factor": 1.8}], 1),
        ("restart", {}, [{"kind": "restart", "at": f"{DURATION_MIN - 10}m", "pods": None, "down": 40}], 2),
        ("idle", {"rate": 0.0}, [], 1),
        ("spare", {}, [], 4),
        ("tp4", {}, [], 4),
        ("longctx", {"prompt": 4000, "prefix_reuse": 0.7}, [], 2),  # KV roomy: see below
    ]
    out = []
    for i, (label, workload, faults, tp) in enumerate(cases):
        engine, version = PROFILES[(i + seed) % len(PROFILES)]
        name = f"s{seed}-healthy-{label}"
        m = _steady(name, engine, tp, rng, **workload)
        m["labels"]["namespace"] = name
        for f in faults:
            if f.get("pods", "all") is None:
                f["pods"] = [m["pods"][0]["name"]]
        m["faults"] = faults
        if label == "spare":
            m["spare_gpus"] = 2
        if label == "longctx":
            m["serving"]["kv_tokens"] = 400000
        out.append(Incident(name, engine, version, [m], {}, "healthy"))
    return out


def _composite(seed: int, rng: random.Random) -> list[Incident]:
    out = []
    pairs = [("kv_cache_pressure", "gpu_hardware_fault"), ("host_bottleneck", "prefix_cache_miss")]
    for i, (a, b) in enumerate(pairs):
        engine, version = PROFILES[(i * 3 + seed) % len(PROFILES)]
        name = f"s{seed}-twofaults-{i}"
        ma, ea = _fault_model(a, f"{name}-a", 1, engine, rng, f"m/{a}")
        mb, eb = _fault_model(b, f"{name}-b", 1, engine, rng, f"m/{b}")
        for m in (ma, mb):
            m["labels"]["namespace"] = name
        out.append(Incident(name, engine, version, [ma, mb], {a: ea, b: eb}, "two-faults"))
    herrings = [("prefix_cache_miss", "thermal"), ("traffic_surge", "clock_cap")]
    for i, (cause, herring) in enumerate(herrings):
        engine, version = PROFILES[(i * 3 + 1 + seed) % len(PROFILES)]
        name = f"s{seed}-herring-{i}"
        m, expect = _fault_model(cause, f"{name}-a", 1, engine, rng, f"m/{cause}")
        m["labels"]["namespace"] = name
        other = _steady(f"{name}-emb", engine, 1, rng, rate=20.0, prompt=300, generation=1, sigma=0.3,
                        max_tokens=1, prefix_reuse=0.0)
        other["labels"]["namespace"] = name
        other["serving"] = {"params_b": 0.6}
        at, _ramp = _timing(rng)
        other["faults"] = [{"kind": herring, "at": at, "pods": [f"{name}-emb-0"],
                            **({"celsius": 70} if herring == "thermal" else {"mhz": 900})}]
        out.append(Incident(name, engine, version, [m, other], {cause: expect}, "red-herring"))
    return out


# ---- serving features: LoRA slots, speculative decoding, prefill/decode KV transfer --------------------
# Each cause only on the profiles whose series support it: SGLang exports no waiting adapters (LoRA is
# vLLM only), SGLang's acceptance-rate gauge starts in 0.5.10, vLLM's NIXL series in 0.12 and SGLang's
# transfer-latency histogram in 0.5.10. Drawn from their own random stream, so adding them leaves the
# other incidents of a seed as they were.
FEATURE_PROFILES = {
    "lora_slots_exhausted": (("vllm", "0.33"), ("vllm", "0.11"), ("vllm", "0.8")),
    "spec_acceptance_drop": (("vllm", "0.33"), ("sglang", "0.5.23"), ("vllm", "0.11"), ("vllm", "0.8")),
    "kv_transfer_slow": (("vllm", "0.33"), ("sglang", "0.5.23")),
}


def _feature_template(cause: str, p: str, v: int, tp: int, at: str, ramp: str, rng: random.Random):
    """(pods as (name, role), workload, serving, transfer, faults, expected pods) of one variant."""
    plain = [(f"{p}-{i}", "") for i in range(2)]
    if cause == "lora_slots_exhausted":
        fault = ({"kind": "lora_adapters", "at": at, "ramp": ramp, "factor": rng.uniform(3.5, 5.0)} if v % 2 == 0
                 else {"kind": "max_loras", "at": at, "pods": [f"{p}-1"], "factor": 0.25})
        return plain, {"rate": 6.0, "adapters": 3, "adapter_skew": rng.uniform(0.3, 0.8)}, \
            {"max_loras": 4, "kv_tokens": 200000}, {}, [fault], \
            {f"{p}-0", f"{p}-1"} if v % 2 == 0 else {f"{p}-1"}
    if cause == "spec_acceptance_drop":
        return plain, {"rate": 3.0, "acceptance": rng.uniform(0.75, 0.85)}, \
            {"params_b": 32.0, "spec_tokens": rng.choice([4, 5]), "kv_tokens": 200000}, {}, \
            [{"kind": "draft_acceptance", "at": at, "ramp": ramp, "factor": rng.uniform(0.1, 0.2)}], \
            {f"{p}-0", f"{p}-1"}
    if cause == "kv_transfer_slow":
        pods = [(f"{p}-prefill-{i}", "prefill") for i in range(2)] + [(f"{p}-decode-{i}", "decode") for i in range(2)]
        hit = [f"{p}-decode-1"] if v % 3 == 2 else [f"{p}-decode-0", f"{p}-decode-1"]
        if v % 3 == 1:  # failures alone: recomputed on the decode pods
            faults = [{"kind": "transfer_failures", "at": at, "ramp": ramp, "pods": hit, "share": rng.uniform(0.3, 0.5)}]
        else:  # the RDMA path falls back to TCP (1/60-1/30 of its bandwidth), some transfers fail
            faults = [{"kind": "link_bandwidth", "at": at, "ramp": ramp, "pods": hit, "factor": rng.uniform(1 / 60, 1 / 30)},
                      {"kind": "transfer_failures", "at": at, "ramp": ramp, "pods": hit, "share": rng.uniform(0.03, 0.1)}]
        # prompts of one narrow size (a RAG template): a wide log-normal's tail of 10k-token prompts takes
        # the prefill pods past a 1s first token on a 32B model whatever the transfer path does
        return pods, {"rate": 3.0, "prompt": 2500.0, "sigma": 0.3}, {"params_b": 32.0, "kv_tokens": 400000}, \
            {"gbs": rng.uniform(25, 50), "recompute": v % 2 == 0}, faults, set(hit)
    raise KeyError(cause)


def feature_incidents(seed: int, variants: int = 4) -> list[Incident]:
    """Every serving-feature cause in `variants` variants across the profiles that support it."""
    rng = random.Random(f"{seed}/features")
    out = []
    for cause, profiles in FEATURE_PROFILES.items():
        for v in range(variants):
            engine, version = profiles[v % len(profiles)]
            tp = TPS[v % len(TPS)]
            name = f"s{seed}-{cause.replace('_', '')[:10]}-{v}"
            at, ramp = _timing(rng)
            pods, workload, serving, transfer, faults, expect = _feature_template(cause, name, v, tp, at, ramp, rng)
            backend = f"{engine}-pd" if cause == "kv_transfer_slow" else engine
            serving = {**serving, "params_b": max(serving.get("params_b", 7.0), 7.0 * tp)}
            model = {"model": f"m/{cause}", "labels": {"namespace": name, "workload_name": name.split("-")[0],
                                                       "backend": backend},
                     "pods": [{"name": n, "gpus": tp, "node": f"{n}-node", **({"role": r} if r else {}),
                               **({"tp": tp} if engine == "sglang" else {})} for n, r in pods],
                     "workload": {**workload, "rate": workload["rate"] * rng.uniform(0.9, 1.1)},
                     "serving": serving, "transfer": transfer, "faults": faults}
            out.append(Incident(name, engine, version, [model], {cause: expect}))
    return out
