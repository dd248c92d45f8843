"""Faults: exogenous changes with an onset, a ramp and noise. Nothing here sets a signal.

A fault changes an input of the serving model (request rate, routing, request shape, a GPU's clock
or cooling, the host's CPU overhead, an engine setting, a pod's lifecycle); the engine model
(sim/engine.py) and the GPU model (sim/gpu.py) turn that into every series. `level(t)` is the fault's
strength between 0 (before onset) and 1 (after the ramp), with multiplicative noise when asked.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# kind -> (what it changes, its parameter and default). Multiplicative faults scale an input by
# 1 + (factor - 1) * level; the others are documented beside their parameter.
KINDS: dict[str, str] = {
    "request_rate": "model request rate x factor (all pods, or the pods named: extra direct traffic)",
    "routing_skew": "routing weight of the pods named x factor (the model's total rate is unchanged)",
    "prompt_length": "prompt length x factor",
    "generation_length": "requested generation length x factor (still capped by max_tokens)",
    "prefix_reuse": "share of each prompt found in the prefix cache x factor",
    "clock_cap": "SM clock of the GPUs named capped at `mhz` (application clocks / power cap)",
    "thermal": "cooling of the GPUs named degraded: `celsius` more at the same power",
    "host_overhead": "CPU time per engine iteration + `seconds` (a CPU-throttled or busy host)",
    "gpu_contention": "another job uses `share` of the GPUs named (slower iterations, busier engine)",
    "kv_capacity": "KV cache capacity x factor (gpu_memory_utilization / --mem-fraction-static lowered)",
    "max_seqs": "max_num_seqs / --max-running-requests x factor",
    "fb_pressure": "another process allocates `mib` of the GPUs named; allocations beyond the GPU fail",
    "xid": "the GPU named reports XID `code`; `errors` of requests fail; `crash`: the engine crash-loops",
    "row_remap": "the GPU named remaps rows after uncorrectable ECC errors (`failure` 1: remapping failed); "
                 "`errors` of requests fail",
    "engine_errors": "a share `errors` of requests fails inside the engine (inputs that hit an engine bug)",
    "pod_loss": "the pods named vanish (deleted / evicted): no target, no engine series",
    "scale": "the operator scales the Deployment to `replicas`; the pods named go (a scale-down)",
    "crash_loop": "the pods named crash and restart every `period` seconds (target down while down)",
    "restart": "the pods named restart once (down for `down` seconds, counters reset)",
    "scrape_gap": "the pods named are not scraped (up == 0) while the engine keeps serving",
    "lora_adapters": "distinct LoRA adapters clients name x factor (a wider adapter mix), sim/lora.py",
    "max_loras": "LoRA adapter slots per batch (--max-loras) x factor",
    "draft_acceptance": "per-token acceptance of speculative draft tokens x factor (a prompt mix the draft "
                        "model predicts worse), sim/spec_decode.py",
    "link_bandwidth": "bandwidth of KV transfers to the decode pods named x factor, sim/pd.py",
    "transfer_failures": "a share `share` of KV transfers to the decode pods named fails (recomputed there)",
}


@dataclass
class Fault:
    kind: str
    at: float
    until: float | None = None
    ramp: float = 0.0
    pods: tuple[str, ...] | None = None
    gpus: tuple[int, ...] | None = None  # GPU indices within each pod named (None: all)
    factor: float = 1.0
    noise: float = 0.0  # multiplicative jitter of the effect, per step
    params: dict[str, float] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")

    def applies(self, pod: str) -> bool:
        return self.pods is None or pod in self.pods

    def applies_gpu(self, pod: str, gpu: int) -> bool:
        return self.applies(pod) and (self.gpus is None or gpu in self.gpus)

    def level(self, t: float) -> float:
        """0 before the onset (and after `until`), rising linearly to 1 over the ramp. A fault at 0 was
        there before the first sample (the warm-up included): a pod absent from the start never shows."""
        if (t < self.at and self.at > 0) or (self.until is not None and t >= self.until):
            return 0.0
        base = min(1.0, max(0.0, t - self.at) / self.ramp) if self.ramp > 0 else 1.0
        if self.noise:
            base *= math.exp(self._rng.gauss(0.0, self.noise))
        return base

    def scale(self, t: float) -> float:
        """The multiplier this fault applies at `t`: 1 + (factor - 1) x level."""
        return 1.0 + (self.factor - 1.0) * self.level(t)

    def param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))


def product(faults: list[Fault], kind: str, t: float, pod: str | None = None) -> float:
    """The combined multiplier of every fault of `kind` (on `pod`, or model-wide ones when None)."""
    out = 1.0
    for f in faults:
        if f.kind == kind and (f.pods is None if pod is None else f.applies(pod)):
            out *= f.scale(t)
    return out
