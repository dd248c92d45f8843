"""Collects every generated artifact and writes them all or nothing.

Each producer maps a Config to {relative path: text}. Output goes to a temporary sibling directory that
replaces the target only when every file rendered, so an error never leaves a half-written folder. The
target is replaced as a whole, so it must be a folder inferwatch owns: missing, empty, or carrying the
MARKER file an earlier run wrote (anything else needs `force`). Output is world-readable as far as the
umask allows, so a `prometheus` system user can read the rule files.
"""
from __future__ import annotations

import os
import secrets
import shutil
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


MARKER = ".inferwatch-generated"
MARKER_TEXT = ("This folder is written by `inferwatch generate` and replaced as a whole on every run;\n"
               "do not keep anything else in it.\n")


class OutputError(ValueError):
    """The output folder cannot be used; the message names it."""


def check_owned(out_dir: Path) -> None:
    """Refuse a target that is a file, or a folder holding things inferwatch did not write."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise OutputError(f"{out_dir} exists and is not a folder; choose another --output")
    if out_dir.is_dir() and not (out_dir / MARKER).is_file() and any(out_dir.iterdir()):
        raise OutputError(f"{out_dir} is not empty and was not written by inferwatch generate (no {MARKER}); "
                          "choose an empty folder, or pass --force to replace everything in it")


def write_tree(files: dict[str, str], out_dir: Path, force: bool = False) -> None:
    """Replace `out_dir` with exactly `files` (plus MARKER), atomically from the reader's point of view."""
    if not force:
        check_owned(out_dir)
    elif out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder; choose another --output")
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.{secrets.token_hex(4)}")
    tmp.mkdir()  # plain mkdir honours the umask (tempfile.mkdtemp would make it 0700)
    try:
        for rel, text in {**files, MARKER: MARKER_TEXT}.items():
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
    files = {**files, MARKER: MARKER_TEXT}
    on_disk = {str(p.relative_to(out_dir)): p for p in out_dir.rglob("*") if p.is_file()} if out_dir.is_dir() else {}
    changed = [rel for rel, text in files.items() if rel not in on_disk or on_disk[rel].read_text() != text]
    extra = [rel for rel in on_disk if rel not in files]
    return sorted(changed + extra)
