"""The defects of issue 16, each with a test that failed before its fix: output folders inferwatch does not
own, secrets, `$` in scope values, deadlines, partial diagnoses, malformed API answers, config and flag
validation, and the webhook under hostile clients. Fake HTTP servers on 127.0.0.1 stand in for
Prometheus only where a failure mode needs one (hangs, garbage); everything else runs a real Prometheus.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.cli import main as inferwatch_main
from inferwatch.generate.writer import MARKER

INFERWATCH = [sys.executable, "-m", "inferwatch.cli"]


# ---- 1. generate -o writes only into a folder it owns ----------------------------------------------------

def test_generate_refuses_a_folder_it_does_not_own_and_keeps_its_contents(tmp_path, capsys):
    (tmp_path / ".git").mkdir()
    (tmp_path / "notes.md").write_text("x")
    assert inferwatch_main(["generate", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(tmp_path) in err and "--force" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "notes.md"]


def test_generate_into_an_existing_file_is_one_line_and_hides_nothing(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("keep me")
    assert inferwatch_main(["generate", "-o", str(target)]) == 2
    assert inferwatch_main(["generate", "-o", str(target), "--force"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(str(target) in line for line in err.strip().splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and target.read_text() == "keep me"


def test_generate_rewrites_its_own_folder_and_force_overrides(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()  # empty: accepted
    assert inferwatch_main(["generate", "-o", str(out)]) == 0
    assert (out / MARKER).is_file()
    (out / "prometheus" / "stale.yaml").write_text("old")
    assert inferwatch_main(["generate", "-o", str(out)]) == 0  # carries the marker: replaced as a whole
    assert not (out / "prometheus" / "stale.yaml").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    assert inferwatch_main(["generate", "-o", str(other), "--force"]) == 0
    assert not (other / "x").exists() and (other / MARKER).is_file()
    assert inferwatch_main(["generate", "--check", "-o", str(other)]) == 0


def test_generated_output_is_world_readable_under_a_022_umask(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert inferwatch_main(["generate", "-o", str(out)]) == 0
    finally:
        os.umask(old)
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o004, f"{path} is {oct(mode)}"
        if path.is_dir():
            assert mode & 0o001, f"{path} is {oct(mode)}"


def test_committed_rules_folder_carries_the_marker():
    assert (Path(__file__).resolve().parent.parent / "rules" / MARKER).is_file()
