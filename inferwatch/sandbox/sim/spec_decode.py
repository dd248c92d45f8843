"""Speculative decoding: a draft model proposes `Serving.spec_tokens` tokens per step and the target
model verifies them in the same iteration.

Each draft token is accepted with probability `Workload.acceptance` (a property of the prompts: how
predictable their continuations are) until the first rejection, so a step yields
1 + a + a^2 + ... + a^k tokens per request. The step costs one target iteration over k + 1 tokens per
request plus k forward passes of the draft model (its weights read each time). Inter-token latency and
tokens per second follow from acceptance; the counters are vLLM's (drafts, draft tokens, accepted
tokens) and SGLang's gauges derive from them (sim/emit.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Conditions, Serving


def tokens_per_step(accept: float, k: int) -> float:
    """Expected tokens one request gains per step: the bonus token plus the accepted prefix of k drafts."""
    return 1.0 + sum(accept ** i for i in range(1, k + 1))


def verify_tokens(s: Serving, batch: int) -> float:
    """Extra tokens the target computes per iteration to verify the drafts of `batch` requests."""
    return float(batch * s.spec_tokens)


def draft_seconds(s: Serving, c: Conditions) -> float:
    """GPU seconds of the k draft passes of one step (memory-bound: the draft's weights read k times)."""
    if s.spec_tokens <= 0:
        return 0.0
    return s.spec_tokens * 2 * s.draft_params_b * 1e9 / (s.bandwidth_tbs * 1e12 * s.tp) / c.clock
