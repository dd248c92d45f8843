"""The built wheel works on its own: installed into a fresh venv, run from outside the checkout.

The wheel is built offline from a copy of the tracked files (the checkout stays clean). The fresh venv
gets the wheel with pip and borrows the test venv's third-party packages through a .pth line (no network);
the editable install of the checkout is not visible there, so every import comes from the wheel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    files = run("git", "ls-files", "-z", cwd=ROOT).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    res = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
              "-w", out, src)
    assert res.returncode == 0, res.stderr[-2000:]
    [whl] = out.glob("inferwatch-*.whl")
    return whl


@pytest.fixture(scope="session")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    assert run(sys.executable, "-m", "venv", "--without-pip", env).returncode == 0
    py = env / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    before = set(os.listdir(site))
    res = run(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel)
    assert res.returncode == 0, res.stderr[-2000:]
    gained = sorted(set(os.listdir(site)) - before)
    assert gained == ["inferwatch", "inferwatch-0.1.0.dist-info"], gained
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_the_wheel_holds_one_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"inferwatch", "inferwatch-0.1.0.dist-info"}
    for data in ("inferwatch/core/catalogs/vllm.yaml", "inferwatch/generate/templates/runbook.md.j2",
                 "inferwatch/sandbox/scenarios/demo-incident.yaml"):
        assert data in names


def test_installed_wheel_imports_from_site_packages_not_the_checkout(venv, tmp_path):
    res = run(venv / "bin" / "python", "-c", "import inferwatch; print(inferwatch.__file__)", cwd=tmp_path)
    assert res.returncode == 0 and str(venv) in res.stdout and str(ROOT) not in res.stdout, res


def test_generate_check_from_outside_the_checkout(venv, tmp_path):
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    res = run(venv / "bin" / "inferwatch", "generate", "--check", "--output", "rules", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (tmp_path / "rules" / "runbooks" / "README.md").write_text("stale\n")
    assert run(venv / "bin" / "inferwatch", "generate", "--check", "--output", "rules", cwd=tmp_path).returncode == 1


def test_demo_from_the_wheel_ends_with_the_diagnosis(venv, tmp_path):
    res = run(venv / "bin" / "inferwatch", "demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Alerts firing at" in res.stdout and "kv_cache_pressure" in res.stdout.split("Alerts firing at", 1)[1]
    assert "chat-2" in res.stdout
    assert run(venv / "bin" / "diagnose", "--help", cwd=tmp_path).returncode == 0
