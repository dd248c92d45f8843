"""Backfill the inferwatch recording rules' history into a LocalPrometheus (benchmarks and tests).

Prometheus evaluates rules only from the moment it starts, so the recorded series of backfilled (past)
data are written with `promtool tsdb create-blocks-from rules`, in passes, since a pass cannot read its own
output. Each rule is evaluated once, in the pass after every record it reads was written (its level:
pass 1 reads engine series, pass 2 the pod records and the GPU owner mapping, ...), so a group whose later
rules read its earlier ones is split over passes rather than evaluated again in each. Every group is
evaluated every `interval`, the GPU mapping and the model histograms included.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from ..core.config import Config, Duration
from ..core.promql import selectors
from ..core.records import recording_groups
from ..core.rules import RecordingRule, RuleGroup, rule_file

from .localprom import LocalPrometheus


def record_history(prom: LocalPrometheus, start: float, end: float, cfg: Config, workdir: Path,
                   interval: str) -> LocalPrometheus:
    """Write the rules' output between start and end every `interval` into the data of `prom` (whose
    workdir is `workdir`) and return it restarted on the same data."""
    every = Duration(interval)
    groups = recording_groups(replace(cfg, recording=replace(cfg.recording, interval=every, histogram_interval=every),
                                      gpu=replace(cfg.gpu, info_interval=every)))
    for n, batch in enumerate(passes(groups)):
        rules_dir, out = workdir / f"rules-{n}", workdir / f"blocks-{n}"
        rules_dir.mkdir()
        files = []
        for g in batch:
            files.append(rules_dir / f"{g.file}.yaml")
            files[-1].write_text(rule_file([g]))
        res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "rules", "--quiet", f"--url={prom.url}",
                              f"--start={int(start)}", f"--end={int(end)}", f"--output-dir={out}", *map(str, files)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            prom.stop()
            raise RuntimeError(f"promtool rules backfill, pass {n + 1} (exit {res.returncode}): "
                               f"{(res.stderr or res.stdout).strip()[-2000:]}")
        prom.stop()
        for block in out.iterdir():
            shutil.move(str(block), prom.workdir / "data" / block.name)
        prom = LocalPrometheus(None, workdir=workdir).start()
    return prom


def passes(groups: list[RuleGroup]) -> list[list[RuleGroup]]:
    """The groups' rules by level: a rule reading no record is level 1, one reading records is one level
    above the highest of them (a rule reading its own past output, `last_over_time`, does not wait for
    itself). Each pass holds one level's rules, in their groups."""
    rules = [r for g in groups for r in g.rules if isinstance(r, RecordingRule)]
    reads = {id(r): {s.metric for s in selectors(r.expr)} - {r.record} for r in rules}
    level: dict[str, int] = {}
    for _ in rules:  # at most one more level settles per round
        changed = False
        for r in rules:
            mine = 1 + max((level.get(m, 0) for m in reads[id(r)]), default=0)
            if mine > level.get(r.record, 0):
                level[r.record], changed = mine, True
        if not changed:
            break
    out = []
    for n in range(1, max(level.values(), default=0) + 1):
        batch = [replace(g, rules=kept) for g in groups
                 if (kept := tuple(r for r in g.rules if isinstance(r, RecordingRule) and level[r.record] == n))]
        out.append(batch)
    return out
