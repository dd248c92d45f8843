"""Backfill the inferwatch recording rules' history into a LocalPrometheus (benchmarks and tests).

Prometheus evaluates rules only from the moment it starts, so the recorded series of backfilled (past)
data are written with `promtool tsdb create-blocks-from rules`, in passes, since a pass cannot read its own
output: pass 1 reads engine series, pass 2 the pod records (and the GPU owner mapping), pass 3 the records
derived from those within a group (the per-GPU info joined to that mapping), pass 4 the GPU fields joined
to the per-GPU info. Every group is evaluated every `interval`, the GPU mapping included.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from ..core.config import Config, Duration
from ..core.records import recording_groups
from ..core.rules import rule_file

from .localprom import LocalPrometheus

LAYERED = ("inferwatch-pod", "inferwatch-model", "inferwatch-gpu-info", "inferwatch-gpu")
DERIVED = ("inferwatch-model", "inferwatch-gpu-info")


def record_history(prom: LocalPrometheus, start: float, end: float, cfg: Config, workdir: Path,
                   interval: str) -> LocalPrometheus:
    """Write the rules' output between start and end every `interval` into the data of `prom` (whose
    workdir is `workdir`) and return it restarted on the same data."""
    every = Duration(interval)
    groups = recording_groups(replace(cfg, recording=replace(cfg.recording, interval=every),
                                      gpu=replace(cfg.gpu, info_interval=every)))
    engines = [g for g in groups if g.name not in LAYERED]
    later = [g for g in groups if g not in engines]
    derived = [g for g in groups if g.name in DERIVED]
    gpu = [g for g in groups if g.name == "inferwatch-gpu"]
    for n, batch in enumerate((engines, later, derived, gpu)):
        rules_dir, out = workdir / f"rules-{n}", workdir / f"blocks-{n}"
        if not batch:
            continue
        rules_dir.mkdir()
        files = []
        for g in batch:
            files.append(rules_dir / f"{g.file}.yaml")
            files[-1].write_text(rule_file([g]))
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "rules", "--quiet", f"--url={prom.url}",
                        f"--start={int(start)}", f"--end={int(end)}", f"--output-dir={out}", *map(str, files)],
                       check=True, capture_output=True)
        prom.stop()
        for block in out.iterdir():
            shutil.move(str(block), prom.workdir / "data" / block.name)
        prom = LocalPrometheus(None, workdir=workdir).start()
    return prom
