"""The built wheel works on its own: installed into a fresh venv (conftest.wheel_venv), run from outside
the checkout."""
from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


def test_the_wheel_holds_one_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"inferwatch", "inferwatch-0.1.0.dist-info"}
    for data in ("inferwatch/core/catalogs/vllm.yaml", "inferwatch/generate/templates/runbook.md.j2",
                 "inferwatch/sandbox/scenarios/demo-incident.yaml"):
        assert data in names


def test_installed_wheel_imports_from_site_packages_not_the_checkout(wheel_venv, tmp_path):
    res = run(wheel_venv / "bin" / "python", "-c", "import inferwatch; print(inferwatch.__file__)", cwd=tmp_path)
    assert res.returncode == 0 and str(wheel_venv) in res.stdout and str(ROOT) not in res.stdout, res


def test_generate_check_from_outside_the_checkout(wheel_venv, tmp_path):
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    res = run(wheel_venv / "bin" / "inferwatch", "generate", "--check", "--output", "rules", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (tmp_path / "rules" / "runbooks" / "README.md").write_text("stale\n")
    assert run(wheel_venv / "bin" / "inferwatch", "generate", "--check", "--output", "rules", cwd=tmp_path).returncode == 1


def test_demo_from_the_wheel_ends_with_the_diagnosis(wheel_venv, tmp_path):
    res = run(wheel_venv / "bin" / "inferwatch", "demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Alerts firing at" in res.stdout and "kv_cache_pressure" in res.stdout.split("Alerts firing at", 1)[1]
    assert "chat-2" in res.stdout
    assert run(wheel_venv / "bin" / "diagnose", "--help", cwd=tmp_path).returncode == 0
