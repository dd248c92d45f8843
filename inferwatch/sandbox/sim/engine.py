"""One continuous-batching engine (a vLLM DP engine or an SGLang DP rank) advanced in small steps.

Per step: arrivals join a FIFO queue; clients abort what waited longer than their timeout; requests
are admitted while the batch is below `max_seqs` and their prompt fits in the free KV tokens; each
iteration decodes one token for every running request and spends the rest of its token budget
(`chunk`, chunked prefill) on prompts, in arrival order. Iteration time = host overhead + GPU time
(weights read once, KV read per context token, compute per token) / the slowest GPU's clock factor.
When decoding grows the batch's KV beyond capacity, the newest requests are preempted (vLLM) /
retracted (SGLang): they lose their KV and go back to the front of the queue to be recomputed.
Latencies are observed per request (TTFT, queue time, e2e) and per token (ITL) for the histograms.
Hooks: admission skips a request whose LoRA adapter has no slot (sim/lora.py) or whose KV has not
arrived (sim/pd.py); speculative decoding adds draft and verification cost to an iteration and tokens
per iteration (sim/spec_decode.py).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from . import lora, spec_decode
from .workload import Request

# Admission keeps room for this share of the tokens the running batch will write during the step; the
# rest of that growth may exceed capacity and preempt (as an engine admitting by current free blocks does).
RESERVE = 0.5
FINE = 0.5  # seconds per step near KV capacity
WATERMARK = 0.99  # admit only while KV use stays below this share of capacity (vLLM keeps a watermark)


@dataclass(frozen=True)
class Serving:
    """Engine settings and the cost model of one engine on its TP group."""
    max_seqs: int = 256            # max_num_seqs / --max-running-requests
    kv_tokens: int = 40_000        # KV capacity in tokens (gpu_memory_utilization / --mem-fraction-static)
    chunk: int = 2048              # tokens per iteration (max_num_batched_tokens / --chunked-prefill-size)
    params_b: float = 7.0          # model size, billions of parameters (fp16/bf16)
    tp: int = 1                    # GPUs per engine
    bandwidth_tbs: float = 2.4     # effective HBM bandwidth per GPU, TB/s
    tflops: float = 350.0          # effective dense TFLOPS per GPU
    kv_kib_per_token: float = 56.0  # KV bytes per token of context (KiB), for 7B; scales with params_b
    host_ms: float = 2.5           # CPU time per iteration (scheduling, sampling, detokenizing)
    host_ms_per_seq: float = 0.04  # CPU time per running request per iteration
    mem_fraction: float = 0.9      # framebuffer the engine preallocates
    max_loras: int = 0             # LoRA adapters per batch (--max-loras; 0: LoRA off), sim/lora.py
    spec_tokens: int = 0           # draft tokens per step (speculative decoding; 0: off), sim/spec_decode.py
    draft_params_b: float = 0.5    # draft model size, billions of parameters

    def gpu_seconds(self, batch: int, context: float, prefill: float) -> tuple[float, float]:
        """(memory-bound, compute-bound) GPU seconds of one iteration at full clock."""
        weights = 2 * self.params_b * 1e9 / (self.bandwidth_tbs * 1e12 * self.tp)
        kv = context * self.kv_kib_per_token * 1024 * (self.params_b / 7.0) / (self.bandwidth_tbs * 1e12 * self.tp)
        compute = 2 * self.params_b * 1e9 * (batch + prefill) / (self.tflops * 1e12 * self.tp)
        return weights + kv, compute


@dataclass
class Conditions:
    """The exogenous inputs of one step."""
    clock: float = 1.0           # slowest GPU's clock / its maximum
    host_s: float = 0.0          # extra CPU seconds per iteration
    contention: float = 0.0      # share of the GPU taken by another job
    kv_factor: float = 1.0
    seqs_factor: float = 1.0
    fail: float = 0.0            # probability that a finishing request fails (GPU fault, OOM)
    timeout: float = 120.0
    loras_factor: float = 1.0    # max_loras x this (a lowered --max-loras)
    accept: float = 0.0          # per-token draft acceptance of the current prompts (speculative decoding)


@dataclass
class Observed:
    """What happened during one emitted sample period (counters' increments, histogram observations)."""
    finished: dict[str, float] = field(default_factory=lambda: {"stop": 0.0, "length": 0.0, "abort": 0.0,
                                                                 "error": 0.0})
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    prefix_queries: float = 0.0
    prefix_hits: float = 0.0
    preemptions: float = 0.0
    ttft: list[tuple[float, float]] = field(default_factory=list)     # (value, weight)
    itl: list[tuple[float, float]] = field(default_factory=list)
    e2e: list[tuple[float, float]] = field(default_factory=list)
    queue: list[tuple[float, float]] = field(default_factory=list)
    prompt_len: list[tuple[float, float]] = field(default_factory=list)
    gen_len: list[tuple[float, float]] = field(default_factory=list)
    busy: float = 0.0            # GPU-busy seconds (engine activity numerator)
    compute: float = 0.0         # compute-bound seconds (tensor activity numerator)
    memory: float = 0.0          # memory-bound seconds (DRAM activity numerator)
    seconds: float = 0.0         # wall seconds covered
    # (step gap, steps) with speculative decoding: vLLM's ITL, one observation per step (else as `itl`)
    itl_steps: list[tuple[float, float]] = field(default_factory=list)
    surfaces: dict[str, float] = field(default_factory=dict)  # speculative / KV-transfer counters' increments


class Engine:
    def __init__(self, serving: Serving, rng: random.Random) -> None:
        self.s = serving
        self.rng = rng
        self.queue: list[Request] = []
        self.running: list[Request] = []
        self.kv_used = 0.0
        self.kv_cap = float(serving.kv_tokens)
        self.last_it = 0.02  # the previous iteration's length: a new request waits for it to end
        self.kv_level = 0.0
        self.tps = 1.0  # tokens a decoding request gains per iteration (more with speculative decoding)
        self.max_loras = 0
        self.handoff: list[Request] | None = None  # a prefill pod's finished requests, for the decode pods

    def lose_all(self) -> None:
        """The process died: its requests are gone (their clients see a broken connection)."""
        self.queue, self.running, self.kv_used = [], [], 0.0

    def step(self, t: float, h: float, arrivals: list[Request], c: Conditions, obs: Observed) -> None:
        """Advance `h` seconds. Near KV capacity or a full batch the step is cut into `FINE` second
        pieces: there an engine admits and preempts token by token, and a coarse step would over- or
        under-fill KV and reuse a freed batch slot only once per step."""
        growth = sum(min(r.target - r.generated, h / self.last_it) for r in self.running)
        full = len(self.running) + len(self.queue) + len(arrivals) > self.s.max_seqs * c.seqs_factor
        if h > FINE and (full or self.kv_used + growth > 0.9 * self.s.kv_tokens * c.kv_factor):
            n = math.ceil(h / FINE)
            levels = []
            for k in range(n):
                t_k = t + k * h / n
                now = [r for r in arrivals if t_k <= r.arrival < t_k + h / n or (k == 0 and r.arrival < t_k)]
                self._step(t_k, h / n, now, c, obs)
                levels.append(self.kv_level)
            self.kv_level = sum(levels) / n
            return
        self._step(t, h, arrivals, c, obs)

    def _step(self, t: float, h: float, arrivals: list[Request], c: Conditions, obs: Observed) -> None:
        s = self.s
        self.kv_cap = s.kv_tokens * c.kv_factor
        max_seqs = max(1, int(s.max_seqs * c.seqs_factor))
        self.max_loras = max(1, round(s.max_loras * c.loras_factor)) if s.max_loras else 0
        self.tps = spec_decode.tokens_per_step(c.accept, s.spec_tokens)
        self.queue.extend(arrivals)
        self._timeouts(t + h, c.timeout, obs)
        self._admit(t, h, max_seqs, obs)
        decoding = [r for r in self.running if r.prefill_left <= 0]
        prefilling = [r for r in self.running if r.prefill_left > 0]
        batch = len(decoding)
        context = self.kv_used
        pending = sum(r.prefill_left for r in prefilling)
        # Iteration time, first without prefill to size the prefill share per iteration.
        mem, comp = s.gpu_seconds(batch, context, 0.0)
        base_it = self._iteration(mem, comp, batch, c)
        budget = max(0, s.chunk - batch)
        per_iter = min(budget, pending * base_it / h) if pending else 0.0
        mem, comp = s.gpu_seconds(batch, context, per_iter + spec_decode.verify_tokens(s, batch))
        it = self._iteration(mem, comp, batch, c) + spec_decode.draft_seconds(s, c)
        full = self._iteration(*s.gpu_seconds(batch, context, float(budget)), batch, c)  # a full prefill chunk
        self.last_it = it
        if not self.running:
            obs.seconds += h
            self.kv_level = self.kv_used / self.kv_cap
            return
        iters = h / it
        gpu = (it - host) if (host := (s.host_ms + s.host_ms_per_seq * batch) / 1000.0 + c.host_s) < it else 0.0
        # Engine activity: busy time, weighted by how much of the GPU an iteration fills (a few decode
        # tokens leave most SMs idle), plus whatever another job runs on it.
        fill = 0.7 + 0.3 * min(1.0, (batch + per_iter) / 512.0)
        obs.busy += min(h, iters * gpu * fill + c.contention * h)
        obs.compute += min(h, iters * comp / c.clock)
        obs.memory += min(h, iters * mem / c.clock)
        obs.seconds += h
        # Prefill in arrival order, `per_iter` tokens per iteration.
        capacity, used = min(pending, budget * iters), 0.0  # what fits in the step's token budgets
        for r in prefilling:
            if used >= capacity:
                break
            take = min(r.prefill_left, capacity - used)
            used += take
            r.prefill_left -= take
            r.kv += take
            self.kv_used += take
            if r.prefill_left <= 0:
                frac = used / capacity if capacity else 0.0
                if r.first_token is None:  # not after a recompute: the token was already sent
                    # prefill runs at full chunks: behind the prompts ahead of it, and not before it arrived
                    own = math.ceil((r.prompt - r.cached) / max(1, budget)) * full
                    r.first_token = max(t + used / max(1, budget) * full, r.admitted + own) + it
                    obs.ttft.append((r.first_token - r.arrival, 1.0))
                    r.generated += 1
                    r.finish = r.first_token
                    obs.generation_tokens += 1
                self._decode(r, t + frac * h, (1 - frac) * iters, it, obs)
        for r in decoding:
            self._decode(r, t, iters, it, obs)
        done = [r for r in self.running if r.prefill_left <= 0 and r.generated >= r.target - 1e-9]
        if done:
            self.running = [r for r in self.running if not (r.prefill_left <= 0 and r.generated >= r.target - 1e-9)]
            for r in done:
                self._account(r, c, obs)
        self._preempt(obs)
        self._admit(t + h, h, max_seqs, obs)  # freed slots refill at once
        # What a scrape sees: the blocks held, including those of admitted prompts still prefilling.
        self.kv_level = min(1.0, (self.kv_used + sum(r.prefill_left for r in self.running)) / self.kv_cap)

    def _iteration(self, mem: float, comp: float, batch: int, c: Conditions) -> float:
        gpu = max(mem, comp) + 0.3 * min(mem, comp)  # overlap of memory and compute
        gpu = gpu / c.clock / max(0.05, 1.0 - c.contention)
        return (self.s.host_ms + self.s.host_ms_per_seq * batch) / 1000.0 + c.host_s + gpu

    def _decode(self, r: Request, t0: float, iters: float, it: float, obs: Observed) -> None:
        tokens = min(max(0.0, iters) * self.tps, max(0.0, r.target - r.generated))
        if tokens <= 0:
            return
        r.generated += tokens
        r.kv += tokens
        self.kv_used += tokens
        obs.generation_tokens += tokens
        gap = it * math.exp(self.rng.gauss(0.0, 0.08))
        obs.itl.append((gap / self.tps, tokens))
        if self.s.spec_tokens:
            obs.itl_steps.append((gap, tokens / self.tps))
            steps, k = tokens / self.tps, self.s.spec_tokens
            for key, inc in (("spec_drafts", steps), ("spec_draft_tokens", steps * k),
                             ("spec_accepted", steps * (self.tps - 1))):
                obs.surfaces[key] = obs.surfaces.get(key, 0.0) + inc
        r.finish = t0 + tokens * it / self.tps

    def _account(self, r: Request, c: Conditions, obs: Observed) -> None:
        """A request left the batch: free its KV, count it by finish reason, observe its latencies."""
        self.kv_used = max(0.0, self.kv_used - r.kv)
        r.kv = 0.0
        if c.fail and self.rng.random() < c.fail:
            obs.finished["error"] += 1
            return
        obs.finished["length" if r.capped else "stop"] += 1
        obs.prompt_tokens += r.prompt
        obs.e2e.append((r.finish - r.arrival, 1.0))
        obs.prompt_len.append((float(r.prompt), 1.0))
        obs.gen_len.append((float(r.target), 1.0))
        if self.handoff is not None:
            self.handoff.append(r)

    def _timeouts(self, now: float, timeout: float, obs: Observed) -> None:
        keep = []
        for r in self.queue:
            if r.admitted is None and now - r.arrival > timeout:
                obs.finished["abort"] += 1
            else:
                keep.append(r)
        self.queue = keep

    def _admit(self, t: float, h: float, max_seqs: int, obs: Observed) -> None:
        """FIFO admission while the batch has room and the prompt fits in KV beside what the running
        requests will write during this step (an engine iterating token by token sees that growth)."""
        growth = RESERVE * sum(min(r.target - r.generated, h / self.last_it) for r in self.running)
        i = 0
        while i < len(self.queue) and len(self.running) < max_seqs:
            r = self.queue[i]
            if r.ready >= t + h or self.max_loras and not lora.admissible(r, self.running, self.max_loras):
                i += 1  # its KV has not arrived, or its adapter has no slot: the requests behind it may go
                continue
            need = r.prefill_left + (r.cached if r.admitted is None else 0) + 16
            growth += RESERVE * min(r.target, h / self.last_it)
            if self.kv_used + need + growth > self.kv_cap * WATERMARK and self.running:
                break
            self.queue.pop(i)
            if r.admitted is None:
                r.admitted = max(t, r.arrival, r.ready) + self.rng.random() * self.last_it
                obs.queue.append((r.admitted - r.arrival, 1.0))
                obs.prefix_queries += r.prompt
                obs.prefix_hits += r.cached
                r.kv = float(r.cached)  # cached prefix blocks are referenced, not recomputed
                self.kv_used += r.kv
            self.running.append(r)

    def _preempt(self, obs: Observed) -> None:
        """Free KV by preempting the newest requests until the batch fits (recompute on re-admission)."""
        if self.kv_used <= self.kv_cap:
            return
        self.running.sort(key=lambda x: x.admitted or 0.0)
        while self.kv_used > self.kv_cap and len(self.running) > 1:
            r = self.running.pop()
            self.kv_used -= r.kv
            r.kv = 0.0
            r.prefill_left = float(r.prompt + int(r.generated))  # recompute prompt and output so far
            self.queue.insert(0, r)
            obs.preemptions += 1
