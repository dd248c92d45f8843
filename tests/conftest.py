"""Shared test fixtures: real Prometheus processes loaded with fixture scenarios, and the built wheel.

`scenario_prometheus(name)` backfills a scenario from inferwatch/sandbox/scenarios into a throwaway Prometheus
(once per test session and scenario) and returns it; every process is stopped by PID at session end.
`synthesized(name)` simulates a scenario once per test process: several files read the same scenario raw
(promtool, VictoriaMetrics) and through that Prometheus, and the simulator is slow.
`wheel` is built offline from a copy of the tracked files (the checkout stays clean); `wheel_venv` is a
fresh venv holding only that wheel, borrowing the test venv's third-party packages through a .pth line
(no network), so every inferwatch import comes from the wheel, never from the checkout's editable install.
"""
from __future__ import annotations

import functools
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.sandbox import scenario

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def synthesized(name: str) -> list[scenario.Series]:
    """The series of a scenario file as it is (callers must not change them)."""
    return scenario.synthesize(scenario.load(name))


def openmetrics_of(name: str) -> str:
    buf = io.StringIO()
    write_openmetrics(synthesized(name), buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def scenario_prometheus():
    started: dict[str, LocalPrometheus] = {}

    def get(name: str) -> LocalPrometheus:
        if name not in started:
            started[name] = LocalPrometheus(openmetrics_of(name)).start()
        return started[name]

    def start_all(names: list[str]) -> None:
        """Simulate in worker processes (the simulator is pure Python: threads would share one core),
        and backfill and start each Prometheus in a thread as soon as its series are ready."""
        todo = [n for n in dict.fromkeys(names) if n not in started]
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(os.cpu_count() or 2, mp_context=fork) as simulate, \
                ThreadPoolExecutor(4) as backfill:
            runs = {n: backfill.submit(lambda f: LocalPrometheus(f.result()).start(), simulate.submit(openmetrics_of, n))
                    for n in todo}
            started.update({n: run.result() for n, run in runs.items()})

    get.start_all = start_all  # type: ignore[attr-defined]
    yield get
    for prom in started.values():
        prom.stop()


def run_quiet(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    files = run_quiet("git", "ls-files", "-z", cwd=ROOT).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    res = run_quiet(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
              "-w", out, src, env={**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    [whl] = out.glob("inferwatch-*.whl")
    return whl


@pytest.fixture(scope="session")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    assert run_quiet(sys.executable, "-m", "venv", "--without-pip", env).returncode == 0
    py = env / "bin" / "python"
    site = Path(run_quiet(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    before = set(os.listdir(site))
    res = run_quiet(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel)
    assert res.returncode == 0, res.stderr[-2000:]
    gained = sorted(set(os.listdir(site)) - before)
    assert gained == ["inferwatch", "inferwatch-0.1.0.dist-info"], gained
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


class LoopbackServer:
    """A throwaway HTTP server on 127.0.0.1 for failure modes (hangs, garbage). Handlers that stall wait
    on `released`, which is set when the server stops, so no thread outlives the test."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def listen(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

