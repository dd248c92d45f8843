"""The README is the front door: its two commands are the ones CI and users run."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def two_commands() -> dict[str, str]:
    block = re.search(r"## Two commands.*?```sh\n(.*?)```", README, re.S)
    assert block, "README has no '## Two commands' section with a sh block"
    cmds = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert len(cmds) == 2, cmds
    return {"demo": cmds[0], "test": cmds[1]}


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci == [two_commands()["test"]]


def test_the_readme_demo_command_ends_with_a_diagnosis():
    out = subprocess.run(two_commands()["demo"], shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    tail = out.stdout[out.stdout.rindex("Root causes"):]
    assert "kv_cache_pressure" in tail and "chat-2" in tail


def test_every_linked_doc_exists():
    for target in re.findall(r"\]\(((?:docs|rules)/[^)#]+)", README):
        assert (ROOT / target).exists(), target
