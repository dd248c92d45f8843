"""Backfill a synthetic cluster into a Prometheus TSDB whose newest sample lands at a chosen moment.

Why the moment matters: Prometheus accepts rule results only after the newest backfilled block (the
head's minimum valid time), and rules evaluated long after the last sample see half-empty rate windows.
So the series are synthesized first, then shifted so that their last sample falls just after loading is
predicted to finish, and written to OpenMetrics for `promtool tsdb create-blocks-from`. Each
Prometheus run gets its own copy, ending when that run starts, so no run measures half-empty windows.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from inferwatch.sandbox.localprom import write_openmetrics

from . import cluster

# write_openmetrics + promtool cost per sample on the reference machine (~7 us), with headroom.
SECONDS_PER_SAMPLE = 10e-6


@dataclass(frozen=True)
class Backfill:
    blocks: Path
    series: int
    samples: int
    last_sample: float  # unix seconds


def backfill(spec: cluster.ClusterSpec, out_dir: Path, gaps: list[float]) -> list[Backfill]:
    """Synthesize `spec` once and backfill one copy per gap, each ending `gap` seconds after the
    previous one; the first ends `gaps[0]` seconds after all copies are predicted to be written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    series = list(cluster.series(replace(spec, end=0.0)))
    samples = sum(len(s) for _, s in series)
    last = round(time.time() + len(gaps) * samples * SECONDS_PER_SAMPLE)
    end, out = 0.0, []
    for i, gap in enumerate(gaps):
        last += round(gap)
        for _, points in series:  # in place: a shifted copy of every series would double the memory
            points[:] = [(t + last - end, v) for t, v in points]
        end = last
        blocks = out_dir / f"blocks-{i}"
        _write_blocks(series, out_dir / "cluster.om", blocks)
        out.append(Backfill(blocks, len(series), samples, float(last)))
    return out


def _write_blocks(series, om: Path, blocks: Path) -> None:
    with om.open("w") as f:
        write_openmetrics(series, f)
    res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                          str(blocks)], capture_output=True, text=True)
    om.unlink()
    if res.returncode != 0:
        raise RuntimeError(f"promtool backfill failed (exit {res.returncode}): {res.stderr.strip()}")
