"""Collects every generated artifact and writes them all or nothing.

Each producer maps a Config to {relative path: text}. Output goes to a temporary sibling directory that
replaces the target only when every file rendered, so an error never leaves a half-written folder.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..core import records
from ..core.config import Check, Config
from ..core.rules import RuleGroup, prometheus_rule, rule_file
from . import alerts, dashboard, receiver, routing, runbooks, scrape, slo

Producer = Callable[[Config], dict[str, str]]

# The sections only generate reads, validated with the core ones (`load_config(path, CHECKS)`).
CHECKS: tuple[Check, ...] = (slo.check_config, alerts.check_config)


def rule_groups(cfg: Config) -> list[RuleGroup]:
    """Every rule group inferwatch ships: recording rules first, then alerts."""
    return records.recording_groups(cfg) + alerts.alert_groups(cfg)


def rule_artifacts(cfg: Config) -> dict[str, str]:
    """Both forms of every group: a plain rule file and a PrometheusRule object."""
    out = {}
    for g in rule_groups(cfg):
        out[f"prometheus/rules/{g.file}.rules.yaml"] = rule_file([g])
        out[f"kubernetes/prometheusrule-{g.file}.yaml"] = prometheus_rule(
            g.file, cfg.output.prometheus_rule_namespace, cfg.output.prometheus_rule_labels, [g])
    return out


PRODUCERS: list[Producer] = [rule_artifacts, scrape.artifacts, routing.artifacts, dashboard.artifacts,
                             runbooks.artifacts, receiver.artifacts]


def render(cfg: Config) -> dict[str, str]:
    files: dict[str, str] = {}
    for produce in PRODUCERS:
        for path, text in produce(cfg).items():
            if path in files:
                raise ValueError(f"two producers write {path}")
            files[path] = text
    return dict(sorted(files.items()))


def write_tree(files: dict[str, str], out_dir: Path) -> None:
    """Replace `out_dir` with exactly `files`, atomically from the reader's point of view."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def drift(files: dict[str, str], out_dir: Path) -> list[str]:
    """Paths that differ between `files` and what is on disk under `out_dir` (missing, extra, changed)."""
    on_disk = {str(p.relative_to(out_dir)): p for p in out_dir.rglob("*") if p.is_file()} if out_dir.exists() else {}
    changed = [rel for rel, text in files.items() if rel not in on_disk or on_disk[rel].read_text() != text]
    extra = [rel for rel in on_disk if rel not in files]
    return sorted(changed + extra)
