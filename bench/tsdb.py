"""Backfill a simulated cluster into a Prometheus TSDB whose newest sample lands at a chosen moment.

Why the moment matters: Prometheus accepts rule results only after the newest backfilled block (the
head's minimum valid time), and rules evaluated long after the last sample see half-empty rate windows.
So the cluster's templates are simulated once, its series renamed from them with their last sample just
after loading is predicted to finish (bench/cluster.py), and written to OpenMetrics for `promtool tsdb
create-blocks-from`, a part of the cluster at a time (5,000 pods fit in memory). Each Prometheus run gets its own copy, ending when that run starts, so
no run measures half-empty windows.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from inferwatch.sandbox.localprom import write_openmetrics

from . import cluster

PODS_PER_PART = 250  # synthesized, written and backfilled at once: memory stays that of one part
HEADROOM = 1.5  # on the backfill time predicted from the first part: a shared machine slows down unevenly


@dataclass(frozen=True)
class Backfill:
    blocks: Path
    series: int
    samples: int
    last_sample: float  # unix seconds


def backfill(spec: cluster.ClusterSpec, out_dir: Path, gaps: list[float]) -> list[Backfill]:
    """Simulate `spec`'s templates and backfill one copy of the cluster per gap, each ending `gap`
    seconds after the previous one; the first ends `gaps[0]` seconds after all copies are predicted to
    be written. The cluster is streamed a part at a time (`Cluster.parts`), each part its own blocks
    (Prometheus merges overlapping blocks), and renamed again for each copy rather than kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    c = cluster.Cluster(spec)
    began = time.monotonic()
    first = next(c.parts(PODS_PER_PART, time.time()))  # the first part, written once to time the rest
    write_blocks(first, out_dir / "part.om", out_dir / "timing")
    shutil.rmtree(out_dir / "timing")
    first_samples = sum(len(s) for _, s in first)
    per_sample = (time.monotonic() - began) / max(1, first_samples)  # renaming, writing, promtool
    first_pods = len({labels.get("pod") for labels, _ in first if labels.get("job") != "dcgm-exporter"}) or 1
    predicted = first_samples * spec.pods / first_pods
    del first
    last = round(time.time() + HEADROOM * len(gaps) * predicted * per_sample)
    out = []
    for i, gap in enumerate(gaps):
        last += round(gap)
        blocks = out_dir / f"blocks-{i}"
        n_series = n_samples = 0
        for n, part in enumerate(c.parts(PODS_PER_PART, float(last))):
            write_blocks(part, out_dir / "part.om", blocks / f"part-{n}")
            n_series += len(part)
            n_samples += sum(len(p) for _, p in part)
            del part
        merge_parts(blocks)
        out.append(Backfill(blocks, n_series, n_samples, float(last)))
    return out


def merge_parts(blocks: Path) -> None:
    """Move every part's blocks into one data folder (block ids are unique ULIDs)."""
    for part in sorted(blocks.glob("part-*")):
        for block in part.iterdir():
            block.rename(blocks / block.name)
        part.rmdir()


def write_blocks(series, om: Path, blocks: Path) -> int:
    """Backfill `series` into new blocks in `blocks` (through the OpenMetrics file `om`, removed after);
    returns the sample count."""
    with om.open("w") as f:
        samples = write_openmetrics(series, f)
    res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                          str(blocks)], capture_output=True, text=True)
    om.unlink()
    if res.returncode != 0:
        raise RuntimeError(f"promtool backfill failed (exit {res.returncode}): {res.stderr.strip()}")
    return samples
