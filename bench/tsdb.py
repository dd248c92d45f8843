"""Backfill a synthetic cluster into a Prometheus TSDB whose newest sample lands at a chosen moment.

Why the moment matters: Prometheus accepts rule results only after the newest backfilled block (the
head's minimum valid time), and rules evaluated long after the last sample see half-empty rate windows.
So the series are synthesized first, then shifted so that their last sample falls at `ready_at`, a
prediction of when loading is done, and written to OpenMetrics for `promtool tsdb create-blocks-from`.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from diagnose.localprom import write_openmetrics

from . import cluster

# write_openmetrics + promtool cost per sample on the reference machine (~7 us), with headroom.
SECONDS_PER_SAMPLE = 10e-6


@dataclass(frozen=True)
class Backfill:
    blocks: Path
    series: int
    samples: int
    last_sample: float  # unix seconds
    seconds: float      # wall time of synthesis + write + promtool


def backfill(spec: cluster.ClusterSpec, out_dir: Path, lead: float) -> Backfill:
    """Synthesize `spec`, shift it to end `lead` seconds after loading is predicted to finish."""
    began = time.monotonic()
    series = list(cluster.series(replace(spec, end=0.0)))
    samples = sum(len(s) for _, s in series)
    series_count = len(series)
    last = round(time.time() + samples * SECONDS_PER_SAMPLE + lead)
    for _, points in series:  # in place: a shifted copy of every series would double the memory
        points[:] = [(t + last, v) for t, v in points]
    om = out_dir / "cluster.om"
    with om.open("w") as out:
        write_openmetrics(series, out)
    del series
    blocks = out_dir / "blocks"
    res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                          str(blocks)], capture_output=True, text=True)
    om.unlink()
    if res.returncode != 0:
        raise RuntimeError(f"promtool backfill failed (exit {res.returncode}): {res.stderr.strip()}")
    return Backfill(blocks, series_count, samples, float(last), time.monotonic() - began)
