"""Backfill a simulated cluster into a Prometheus TSDB whose newest sample lands at a chosen moment.

Why the moment matters: Prometheus accepts rule results only after the newest backfilled block (the
head's minimum valid time), and rules evaluated long after the last sample see half-empty rate windows.
So the cluster's templates are simulated once, its series renamed from them with their last sample just
after loading is predicted to finish (bench/cluster.py), and written to OpenMetrics for `promtool tsdb
create-blocks-from`, a part of the cluster at a time (5,000 pods fit in memory). Each Prometheus run gets its own copy, ending when that run starts, so
no run measures half-empty windows. The parts' blocks overlap in time, and Prometheus merges overlapping
blocks a minute after it starts (6 CPU-seconds at 1,000 pods): `compact` has that done before anything is
measured, or the merge lands inside a measurement and every query before it reads each part's index.
`load_head` writes the cluster into a running Prometheus' head instead (remote write), as a live
Prometheus holds its last hours (bench_rules --storage head).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from inferwatch.sandbox import remote_write
from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics

from . import cluster

PODS_PER_PART = 250  # synthesized, written and backfilled at once: memory stays that of one part
HEADROOM = 2.0  # on the backfill time predicted from the first part: a shared machine slows down unevenly
COMPACTION_TICK = 60.0  # seconds after start before Prometheus looks for blocks to merge (then once a minute)
MERGE_SHARE = 0.25  # merging a copy's blocks, as a share of the time to write them (about 0.1 measured)
COMPACTION_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Backfill:
    blocks: Path | None  # None: loaded into a running Prometheus' head (load_head)
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
    first_samples = write_blocks(first, out_dir / "part.om", out_dir / "timing")
    shutil.rmtree(out_dir / "timing")
    per_sample = (time.monotonic() - began) / max(1, first_samples)  # renaming, writing, promtool
    first_pods = len({labels.get("pod") for labels, _ in first if labels.get("job") != "dcgm-exporter"}) or 1
    predicted = first_samples * spec.pods / first_pods
    del first
    per_copy = HEADROOM * predicted * per_sample
    if c.part_count(PODS_PER_PART) > 1:  # blocks to merge (`compact`)
        per_copy = per_copy * (1 + MERGE_SHARE) + COMPACTION_TICK
    last = round(time.time() + len(gaps) * per_copy)
    out = []
    for i, gap in enumerate(gaps):
        last += round(gap)
        blocks = out_dir / f"blocks-{i}"
        n_series = n_samples = 0
        for n, part in enumerate(c.parts(PODS_PER_PART, float(last))):
            n_samples += write_blocks(part, out_dir / "part.om", blocks / f"part-{n}")
            n_series += len(part)
            del part
        merge_parts(blocks)
        compact(blocks)
        out.append(Backfill(blocks, n_series, n_samples, float(last)))
    return out


def merge_parts(blocks: Path) -> None:
    """Move every part's blocks into one data folder (block ids are unique ULIDs)."""
    for part in sorted(blocks.glob("part-*")):
        for block in part.iterdir():
            block.rename(blocks / block.name)
        part.rmdir()


def compact(blocks: Path) -> None:
    """Have a Prometheus of its own merge the overlapping blocks in `blocks` into one, and wait for it.
    Nothing is appended, so blocks ending in the future are fine."""
    if not overlapping(blocks):
        return
    workdir = blocks.with_name(blocks.name + "-compacting")
    workdir.mkdir()
    blocks.rename(workdir / "data")
    try:
        with LocalPrometheus(None, workdir=workdir):
            wait_merged(workdir / "data")
    finally:
        (workdir / "data").rename(blocks)
        shutil.rmtree(workdir)


def wait_merged(data: Path, timeout: float = COMPACTION_TIMEOUT) -> float:
    """Wait until the Prometheus running on `data` has merged its overlapping blocks (it begins a minute
    after starting); returns the seconds waited."""
    began = time.monotonic()
    while overlapping(data):
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"Prometheus did not merge the blocks in {data} within {timeout:.0f}s")
        time.sleep(2.0)
    return time.monotonic() - began


def overlapping(blocks: Path) -> bool:
    """Whether any two blocks in a data folder cover overlapping time (meta.json: minTime, maxTime). A
    block that a running merge deletes meanwhile counts as overlapping (ask again)."""
    try:
        spans = sorted((m["minTime"], m["maxTime"]) for m in
                       (json.loads(p.read_text()) for p in blocks.glob("*/meta.json")))
    except (OSError, ValueError):
        return True
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


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


def load_head(spec: cluster.ClusterSpec, url: str, end: float) -> Backfill:
    """Write the cluster, its last sample at `end` (may lie ahead: the head takes future samples, and a
    run measured before `end` sees full rate windows), into the running Prometheus at `url` through
    remote write, a part at a time. The returned `blocks` is None: the data is that Prometheus' head."""
    c = cluster.Cluster(spec)
    n_series = n_samples = 0
    encoded: dict = {}  # the templates' sample lists, encoded once for every copy
    with requests.Session() as http:
        for part in c.parts(PODS_PER_PART, end):
            n_samples += remote_write.push(url, part, http, encoded)
            n_series += len(part)
            del part
    return Backfill(None, n_series, n_samples, end)
