"""LoRA adapters: which adapter a request names, and the batch's adapter slots.

Clients spread requests over `Workload.adapters` adapters with Zipf popularity (`adapter_skew`); an
engine holds at most `Serving.max_loras` distinct adapters in its running batch (vLLM `--max-loras`,
SGLang `--max-loras-per-batch`). A request whose adapter has no slot stays waiting while requests
behind it are admitted (vLLM's scheduler skips it and goes on), so more distinct adapters in demand,
or fewer slots, make requests wait while KV and the batch still have room.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .workload import Request


def pick(rng: random.Random, adapters: int, skew: float) -> int:
    """An adapter index in [0, adapters), adapter i drawn with weight 1 / (i + 1) ** skew."""
    weights = [1.0 / (i + 1) ** skew for i in range(adapters)]
    return rng.choices(range(adapters), weights)[0]


def admissible(r: Request, running: Iterable[Request], max_loras: int) -> bool:
    """Whether `r` can join a batch already running `running` (no adapter, or its adapter has a slot)."""
    if max_loras <= 0 or r.adapter < 0:
        return True
    active = {x.adapter for x in running if x.adapter >= 0}
    return r.adapter in active or len(active) < max_loras


def names(requests: Iterable[Request]) -> tuple[str, ...]:
    """The distinct adapters of `requests`, as vLLM lists them (sorted names)."""
    return tuple(f"adapter-{i}" for i in sorted({r.adapter for r in requests if r.adapter >= 0}))
