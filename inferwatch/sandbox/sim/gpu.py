"""GPU telemetry derived from the work the engine did (what dcgm-exporter would report).

Activity is the share of wall time the GPU was busy (tensor: compute-bound share, DRAM: memory-bound
share); power rises with activity and with the clock squared, up to the power limit; temperature
follows power with a lag (first order, `tau` seconds); the SM clock backs off when power would
exceed the limit or the temperature passes the slowdown point, is capped by a clock fault, and idles
low without work. The framebuffer holds the engine's preallocation plus anything another process took.
Why the clock is held back is kept as dcgm's clock-event reasons, with the time each reason lasted
(the `*_VIOLATION` counters of a custom counters CSV).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuSpec:
    max_mhz: float = 1980.0
    idle_mhz: float = 345.0
    power_limit: float = 700.0
    idle_watts: float = 75.0
    work_watts: float = 560.0     # extra watts at full activity and full clock
    ambient: float = 28.0
    c_per_watt: float = 0.085     # steady-state degrees above ambient per watt
    slowdown_c: float = 87.0      # thermal slowdown point
    tau: float = 90.0
    fb_total_mib: float = 81559.0


@dataclass
class Gpu:
    spec: GpuSpec
    temperature: float = 0.0
    clock_factor: float = 1.0     # current SM clock / max, what the engine runs at
    engine_active: float = 0.0
    tensor_active: float = 0.0
    dram_active: float = 0.0
    power: float = 0.0
    sm_mhz: float = 0.0
    fb_used_mib: float = 0.0
    xid: float = 0.0
    remapped_rows: float = 0.0
    row_remap_failure: float = 0.0
    reasons: frozenset[str] = frozenset()  # dcgm clock-event reasons active in the last update
    violation_ns: dict[str, float] = field(default_factory=lambda: {"power": 0.0, "thermal": 0.0})

    def __post_init__(self) -> None:
        self.temperature = self.spec.ambient + self.spec.c_per_watt * self.spec.idle_watts
        self.sm_mhz = self.spec.idle_mhz

    def update(self, h: float, busy: float, tensor: float, dram: float, cap_mhz: float | None,
               extra_c: float) -> None:
        """Advance `h` seconds given the activity shares of that time; sets the clock for the next step."""
        g = self.spec
        self.engine_active, self.tensor_active, self.dram_active = busy, tensor, dram
        cap = min(1.0, cap_mhz / g.max_mhz) if cap_mhz else 1.0
        want, reasons = cap, {"clocks_setting"} if cap < 1.0 else set()
        dynamic = g.work_watts * (0.45 * busy + 0.35 * tensor + 0.2 * dram)
        if dynamic > 0 and g.idle_watts + dynamic * want ** 2 > g.power_limit:  # power limit
            want = math.sqrt((g.power_limit - g.idle_watts) / dynamic)
            reasons.add("power_cap")
        self.power = g.idle_watts + dynamic * want ** 2
        target = g.ambient + extra_c + g.c_per_watt * self.power
        self.temperature += (target - self.temperature) * (1 - math.exp(-h / g.tau))
        if self.temperature > g.slowdown_c:  # thermal slowdown: 6% of clock per degree over
            want = min(want, max(0.35, 1.0 - 0.06 * (self.temperature - g.slowdown_c)))
            reasons.add("sw_thermal")
        if busy <= 0.02:
            reasons.add("gpu_idle")
        self.reasons = frozenset(reasons)
        for kind, reason in (("power", "power_cap"), ("thermal", "sw_thermal")):
            self.violation_ns[kind] += h * 1e9 if reason in reasons else 0.0
        self.clock_factor = want
        self.sm_mhz = g.max_mhz * want if busy > 0.02 else g.idle_mhz
