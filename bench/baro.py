"""A BARO-style baseline: robust-scaler anomaly scores per candidate series, mapped to cause ids.

For every pod and GPU series a diagnosis could point at, the score is the largest |x - median| / IQR
over the incident window, with median and IQR taken from the hour before it (BARO's robust scaler,
Pham et al., FSE 2024). The cause is read off the top-scoring series (which signal, which way it
moved); a request-rate rise on most of a model's pods is a surge, on fewer an imbalance. Below a
score threshold (tuned on the tuning seeds) the incident is called healthy.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

Series = tuple[dict[str, str], list[tuple[float, float]]]

# (signal, direction) -> cause id; direction +1 up, -1 down
CAUSE_OF = {("waiting", 1): "queue_backlog", ("running", 1): "large_decode_batch",
            ("kv", 1): "kv_cache_pressure", ("preemptions", 1): "kv_cache_pressure",
            ("prefix_hit", -1): "prefix_cache_miss", ("prompt", 1): "long_prompts",
            ("requests", 1): "traffic_surge", ("present", -1): "replica_unavailable",
            ("xid", 1): "gpu_hardware_fault", ("row_remap", 1): "gpu_hardware_fault",
            ("sm_clock", -1): "gpu_throttling", ("fb", 1): "gpu_memory_pressure",
            ("engine_active", 1): "gpu_compute_saturation", ("engine_active", -1): "host_bottleneck"}

_GAUGES = {"vllm:num_requests_waiting": "waiting", "sglang:num_queue_reqs": "waiting",
           "vllm:num_requests_running": "running", "sglang:num_running_reqs": "running",
           "vllm:kv_cache_usage_perc": "kv", "vllm:gpu_cache_usage_perc": "kv", "sglang:token_usage": "kv",
           "sglang:cache_hit_rate": "prefix_hit"}
_COUNTERS = {"vllm:num_preemptions_total": "preemptions", "sglang:num_retracted_requests_total": "preemptions",
             "vllm:request_success_total": "requests", "sglang:num_requests_total": "requests",
             "vllm:prompt_tokens_total": "prompt_tokens", "sglang:prompt_tokens_total": "prompt_tokens",
             "vllm:prefix_cache_hits_total": "hits", "vllm:gpu_prefix_cache_hits_total": "hits",
             "vllm:prefix_cache_queries_total": "queries", "vllm:gpu_prefix_cache_queries_total": "queries"}
_GPU = {"DCGM_FI_DEV_SM_CLOCK": "sm_clock", "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "engine_active",
        "DCGM_FI_DEV_XID_ERRORS": "xid", "DCGM_FI_DEV_ROW_REMAP_FAILURE": "row_remap"}


@dataclass(frozen=True)
class Ranked:
    cause: str
    score: float
    entities: frozenset[str]


def candidates(series: list[Series], namespace: str) -> dict[tuple[str, str], dict[float, float]]:
    """(entity, signal) -> {t: value} for one namespace: pods as `pod`, GPUs as `pod/gpu`."""
    gauges: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    counters: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    fb: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for labels, samples in series:
        name = labels["__name__"]
        if labels.get("namespace") == namespace and "pod" in labels:
            pod = labels["pod"]
            if name in _GAUGES:
                key = (pod, _GAUGES[name])
                for t, v in samples:
                    gauges[key][t] = max(gauges[key].get(t, v), v)  # SGLang TP ranks repeat values
            elif name in _COUNTERS:
                key = (pod, _COUNTERS[name])
                for t, v in samples:
                    counters[key][t] += v
            elif name == "up":
                for t, v in samples:
                    gauges[(pod, "present")][t] = v
        elif labels.get("exported_namespace", labels.get("namespace")) == namespace and "gpu" in labels:
            pod = labels.get("exported_pod") or labels.get("pod", "")
            entity = f"{pod}/{labels['gpu']}"
            if name in _GPU:
                for t, v in samples:
                    gauges[(entity, _GPU[name])][t] = v
            elif name in ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"):
                for t, v in samples:
                    fb[entity][t][0 if name.endswith("USED") else 1] = v
    for entity, points in fb.items():
        gauges[(entity, "fb")] = {t: u / (u + f) for t, (u, f) in points.items() if u + f}
    rates = {key: _rate(points) for key, points in counters.items()}
    for (pod, sig), r in rates.items():
        if sig in ("requests", "preemptions"):
            gauges[(pod, sig)] = r
    for pod in {p for p, _ in rates}:
        req, tok = rates.get((pod, "requests"), {}), rates.get((pod, "prompt_tokens"), {})
        gauges[(pod, "prompt")] = {t: tok[t] / req[t] for t in tok if req.get(t)}
        hits, queries = rates.get((pod, "hits"), {}), rates.get((pod, "queries"), {})
        if queries:
            gauges[(pod, "prefix_hit")] = {t: hits.get(t, 0.0) / queries[t] for t in queries if queries[t]}
    return gauges


def _rate(points: dict[float, float], window: int = 5) -> dict[float, float]:
    """Per-second increase over the last `window` samples (counter resets count from zero)."""
    ts = sorted(points)
    out = {}
    for i in range(window, len(ts)):
        inc = 0.0
        for a, b in zip(ts[i - window:i], ts[i - window + 1:i + 1]):
            d = points[b] - points[a]
            inc += d if d >= 0 else points[b]
        out[ts[i]] = inc / (ts[i] - ts[i - window])
    return out


def rank(cands: dict[tuple[str, str], dict[float, float]], window_start: float, baseline_start: float,
         at: float) -> list[Ranked]:
    scored: list[tuple[float, str, str, int]] = []
    for (entity, sig), points in cands.items():
        base = [v for t, v in points.items() if baseline_start <= t < window_start]
        inc = [v for t, v in points.items() if window_start <= t <= at]
        if sig == "present":  # a pod that vanished has no samples in the window
            inc = inc + [0.0] * max(0, 15 - len(inc))
        if len(base) < 10 or not inc:
            continue
        med = median(base)
        q = sorted(base)
        iqr = q[(3 * len(q)) // 4] - q[len(q) // 4]
        scale = max(iqr, 0.01 * abs(med), 1e-6)
        for direction in (1, -1):
            if (sig, direction) not in CAUSE_OF:
                continue
            score = max(max(0.0, direction * (x - med)) for x in inc) / scale
            scored.append((score, entity, sig, direction))
    scored.sort(reverse=True)
    out: dict[str, Ranked] = {}
    for score, entity, sig, direction in scored:
        cause = CAUSE_OF[(sig, direction)]
        if sig == "requests":
            pods = {e for e, s in cands if s == "requests"}
            high = {e for sc, e, s, d in scored if s == "requests" and d == 1 and sc >= 0.5 * score}
            cause = "traffic_surge" if len(high) >= max(2, (2 * len(pods) + 2) // 3) else "load_imbalance"
            entities = frozenset(high if cause == "traffic_surge" else {entity})
        else:
            entities = frozenset({entity})
        if cause not in out:
            out[cause] = Ranked(cause, score, entities)
    return sorted(out.values(), key=lambda r: -r.score)
