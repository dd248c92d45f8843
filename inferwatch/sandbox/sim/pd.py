"""Prefill/decode disaggregation: prefill pods hand each request's KV cache to a decode pod over a link.

A request arrives at a prefill pod, which computes its prompt and first token (`max_tokens` 1, as the
disaggregation proxies send it) and finishes there. The proxy then sends it to a decode pod (the one
with the fewest requests in flight), which pulls the prompt's KV from the prefill pod: the transfer
takes the link's latency plus the KV bytes (prompt tokens x KV bytes per token) over its bandwidth.
Only then can the decode pod admit the request and decode it, so the transfer adds to the time to
first token the decode pod reports (it counts from the request's arrival there). A transfer fails with
the link's failure share or when it outlasts `timeout`; the decode pod then recomputes the prompt itself
(vLLM's default) or fails the request (`recompute: false`, SGLang aborts it).
The decode pod (the KV consumer, as vLLM's NIXL connector) counts transfers, their seconds and bytes,
failures, and the transfers in flight to it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .engine import Serving
from .faults import Fault
from .workload import Request


@dataclass(frozen=True)
class Link:
    """The prefill-to-decode path (scenario key `transfer:`)."""
    gbs: float = 25.0        # effective bandwidth, GB/s (RDMA NIC share)
    latency_ms: float = 2.0  # per transfer: handshake, descriptor posting
    timeout: float = 30.0    # seconds before a decode pod gives up on a transfer
    recompute: bool = True   # a failed transfer is recomputed on the decode pod (else the request fails)


@dataclass
class Transfer:
    ready: float        # when the decode pod has the KV (or gives up)
    request: Request    # the decode leg
    pod: str
    seconds: float
    bytes: float
    failed: bool


def prefill_leg(r: Request) -> Request:
    """What the prefill pod serves: the prompt and one token; the decode leg is kept in `r.then`."""
    return Request(arrival=r.arrival, prompt=r.prompt, target=1, capped=True, cached=r.cached,
                   prefill_left=r.prefill_left, adapter=r.adapter, then=(r.target, r.capped))


@dataclass
class Handoff:
    """Transfers in flight between a model's prefill and decode pods."""
    link: Link
    rng: random.Random
    flying: list[Transfer] = field(default_factory=list)

    def send(self, done: list[Request], decode: list[str], s: Serving, faults: list[Fault], t: float) -> None:
        """Start a transfer for each request the prefill pods finished, to the least busy decode pod."""
        for r in done:
            if r.then is None or not decode:
                continue
            pod = min(decode, key=lambda p: (sum(f.pod == p for f in self.flying), self.rng.random()))
            size = r.prompt * s.kv_kib_per_token * 1024 * (s.params_b / 7.0)
            bw = self.link.gbs * 1e9 * _scale(faults, "link_bandwidth", pod, t)
            seconds = self.link.latency_ms / 1000.0 + size / max(bw, 1.0)
            failed = seconds > self.link.timeout or self.rng.random() < _share(faults, pod, t)
            seconds = min(seconds, self.link.timeout)
            target, capped = r.then
            leg = Request(arrival=r.first_token or r.finish, prompt=r.prompt, target=target, capped=capped,
                          cached=r.cached if failed else r.prompt - 1, adapter=r.adapter,
                          failed=failed and not self.link.recompute)
            leg.prefill_left = float(leg.prompt - leg.cached)  # the last token is computed on the decode pod
            leg.ready = leg.arrival + seconds
            self.flying.append(Transfer(leg.ready, leg, pod, seconds, size, failed))

    def arrive(self, pod: str, until: float) -> tuple[list[Request], dict[str, float]]:
        """The requests whose KV reached `pod` before `until` (not those failed for good), and the transfer
        counters' increments (`errors`: requests failed for good)."""
        now = [f for f in self.flying if f.pod == pod and f.ready < until]
        self.flying = [f for f in self.flying if not (f.pod == pod and f.ready < until)]
        stats = {"kv_transfers": float(len(now)), "kv_transfer_seconds": sum(f.seconds for f in now),
                 "kv_transfer_bytes": sum(f.bytes for f in now), "kv_transfer_failed": float(sum(f.failed for f in now)),
                 "errors": float(sum(f.request.failed for f in now))}
        return sorted((f.request for f in now if not f.request.failed), key=lambda r: r.arrival), stats

    def in_flight(self, pod: str) -> float:
        return float(sum(f.pod == pod for f in self.flying))


def _scale(faults: list[Fault], kind: str, pod: str, t: float) -> float:
    out = 1.0
    for f in faults:
        if f.kind == kind and f.applies(pod):
            out *= f.scale(t)
    return out


def _share(faults: list[Fault], pod: str, t: float) -> float:
    return min(1.0, sum(f.param("share", 0.1) * min(1.0, f.level(t)) for f in faults
                        if f.kind == "transfer_failures" and f.applies(pod)))
