"""What clients send: a model's request rate with slow drift and noise, and each request's shape.

Prompt and generation lengths are log-normal around their medians; a generation is cut at
`max_tokens` (the engine then reports finished_reason=length). A share of each prompt is found in
the prefix cache (system prompts, multi-turn history). Clients give up on a request that has not
started after `timeout` seconds (an abort).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from . import lora


@dataclass(frozen=True)
class Workload:
    rate: float = 6.0            # requests / s for the whole model (split across its ready pods)
    prompt: float = 800.0        # median prompt tokens
    generation: float = 200.0    # median requested generation tokens
    sigma: float = 0.6           # log-normal spread of both lengths
    max_tokens: int = 1024       # generation cap
    prefix_reuse: float = 0.5    # share of a prompt usually cached
    timeout: float = 120.0       # seconds a client waits in the queue before aborting
    drift: float = 0.08          # amplitude of the slow (hours) rate drift
    noise: float = 0.05          # per-step multiplicative rate noise
    adapters: int = 0            # LoRA adapters clients name (0: the base model only), sim/lora.py
    adapter_skew: float = 1.0    # Zipf exponent of adapter popularity
    acceptance: float = 0.7      # per-token acceptance of draft tokens (speculative decoding), sim/spec_decode.py


@dataclass(slots=True, eq=False)
class Request:
    arrival: float
    prompt: int
    target: int           # tokens to generate
    capped: bool          # target was cut at max_tokens
    cached: int           # prompt tokens found in the prefix cache
    prefill_left: float = 0.0
    generated: float = 0.0
    kv: float = 0.0               # tokens this request holds in the KV cache
    finish: float = 0.0
    admitted: float | None = None
    first_token: float | None = None
    failed: bool = False          # its KV transfer failed for good (prefill/decode), sim/pd.py
    adapter: int = -1             # LoRA adapter index (-1: the base model)
    then: tuple[int, bool] | None = None  # prefill/decode: the decode leg's (target, capped), sim/pd.py
    ready: float = -math.inf      # not admissible before (a decode leg waits for its KV), sim/pd.py


def drift(w: Workload, t: float, phase: float) -> float:
    """Slow rate drift: a 3-hour sine of amplitude `drift`."""
    return 1.0 + w.drift * math.sin(2 * math.pi * t / 10_800.0 + phase)


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation: exact enough, and O(1)
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def sample(rng: random.Random, w: Workload, t0: float, h: float, n: int, prompt_x: float, gen_x: float,
           reuse_x: float, adapters_x: float = 1.0) -> list[Request]:
    """n requests arriving uniformly in [t0, t0 + h), lengths and the adapter mix scaled by the active faults."""
    adapters = max(1, round(w.adapters * adapters_x)) if w.adapters else 0
    out = []
    for _ in range(n):
        prompt = max(1, int(w.prompt * prompt_x * math.exp(rng.gauss(0.0, w.sigma))))
        want = max(1, int(w.generation * gen_x * math.exp(rng.gauss(0.0, w.sigma))))
        target = min(want, w.max_tokens)
        reuse = min(0.98, max(0.0, w.prefix_reuse * reuse_x * (0.8 + 0.4 * rng.random())))
        cached = int(prompt * reuse)
        out.append(Request(arrival=t0 + h * rng.random(), prompt=prompt, target=target, capped=want > target,
                           cached=cached, prefill_left=float(prompt - cached),
                           adapter=lora.pick(rng, adapters, w.adapter_skew) if adapters else -1))
    out.sort(key=lambda r: r.arrival)
    return out
