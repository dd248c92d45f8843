"""Throwaway Prometheus and Alertmanager processes on 127.0.0.1.

Tests, `diagnose demo` and the benchmarks need a real PromQL engine and a real
Alertmanager, not mocks. This module backfills synthetic series into a fresh
TSDB with `promtool tsdb create-blocks-from openmetrics` and runs the servers
in a temp dir, so past dates (2026-01-01) and recent samples are both queryable.

Quirks of the 2.42 tooling that shape the code (found by experiment):
- promtool silently DROPS a sample that is not newer than the previous sample
  of the same series within one 2h block window (out of order or duplicate
  timestamp; exit code stays 0). Samples of different series may interleave
  freely, so per-series time order is all that is required; we check it.
- promtool does not insist on contiguous metric families, but the format does,
  so we group by metric name anyway. Names with colons are accepted.
- Overlapping blocks need no flag: since 2.39 they are always allowed
  (`--storage.tsdb.allow-overlapping-blocks` is a hidden no-op).
- Time retention is measured from the newest block, not the wall clock, and is
  applied to backfilled blocks at start: with the default 15d, 2026-01-01 data
  is deleted as soon as data near "now" is loaded too. Hence retention=100y.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TextIO

import requests

from ..core.prometheus import PromClient
from ..core.promql import escape_value

Series = tuple[Mapping[str, str], Sequence[tuple[float, float]]]

SETUP_HINT = "run `make setup` (installs the prometheus and prometheus-alertmanager packages)"
READY_TIMEOUT = 30.0
_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _series_prefix(labels: Mapping[str, str]) -> tuple[str, str]:
    name = labels["__name__"]
    pairs = ",".join(f'{k}="{escape_value(str(v))}"' for k, v in labels.items() if k != "__name__")
    return name, f"{name}{{{pairs}}} " if pairs else f"{name} "


def write_openmetrics(series: Iterable[Series], out: TextIO) -> int:
    """Write `series` as an OpenMetrics body for promtool; returns the sample count.

    Series are grouped by metric name (families must be contiguous); the series
    themselves are only referenced, not copied, so memory stays that of the input.
    Raises ValueError if a series' timestamps are not strictly increasing, since
    promtool would silently drop those samples.
    """
    families: dict[str, list[tuple[str, Sequence[tuple[float, float]]]]] = {}
    for labels, samples in series:
        name, prefix = _series_prefix(labels)
        families.setdefault(name, []).append((prefix, samples))
    special = _SPECIAL.get
    total = 0
    for members in families.values():
        for prefix, samples in members:
            lines = []
            last = -math.inf
            for t, v in samples:
                if t <= last:
                    raise ValueError(f"{prefix.strip()}: timestamp {t!r} not after {last!r}")
                last = t
                rv = repr(v)
                lines.append(f"{prefix}{special(rv, rv)} {t!r}\n")
            out.write("".join(lines))
            total += len(lines)
    out.write("# EOF\n")
    return total


def _find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"{' / '.join(names)} not found on PATH; {SETUP_HINT}")


class _Server:
    """Shared lifecycle: temp dir, free port, log file, readiness wait, stop."""

    _name = "server"

    def __init__(self, workdir: Path | None, env: Mapping[str, str] | None = None) -> None:
        self._workdir_given = workdir is not None
        self.workdir: Path | None = Path(workdir) if workdir is not None else None
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._binary = ""
        self.env = dict(env or {})  # set on top of ours (e.g. GOGC for a benchmark)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self._name} not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self._name} not started")
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, f"{self._name} not started"
        return self.workdir / f"{self._name}.log"

    def _make_workdir(self) -> Path:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"inferwatch-{self._name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _launch(self) -> None:
        """Start the process and wait for /-/ready; retry if the port was taken meanwhile."""
        atexit.register(self.stop)
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    self._command(self.port), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=self.workdir,
                    env={**os.environ, **self.env} if self.env else None)
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                try:
                    if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            tail, code = self._log_tail(), self._proc.poll()
            if code is not None and "address already in use" in tail:
                continue
            self.stop()
            why = f"exited with code {code}" if code is not None else \
                f"not ready within {READY_TIMEOUT:.0f}s"
            raise RuntimeError(f"{self._name} {why}; log tail:\n{tail}")
        self.stop()
        raise RuntimeError(f"{self._name}: no free port after 3 attempts")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL after `timeout`, then remove our temp dir. Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.workdir is not None and not self._workdir_given:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        """Make the work dir, let the subclass prepare it, launch; stop everything on any failure."""
        self._binary = self._find()
        workdir = self._make_workdir()
        try:
            self._prepare(workdir)
            self._launch()
            self._after_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _find(self) -> str:
        raise NotImplementedError

    def _prepare(self, workdir: Path) -> None:
        """Write config and data files before the process starts."""

    def _after_ready(self) -> None:
        """Wait for anything beyond /-/ready."""


class LocalPrometheus(_Server):
    """A Prometheus with backfilled data and no scrape jobs (only rule evaluation).

    `openmetrics` is a Path to an OpenMetrics file, or the body text itself
    (a str naming an existing file is also taken as a path).
    """

    _name = "prometheus"

    def __init__(self, openmetrics: str | Path | None = None, rule_files: Sequence[Path] = (),
                 evaluation_interval: str = "15s", retention: str = "100y",
                 extra_args: Sequence[str] = (), workdir: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir, env)
        self.openmetrics = openmetrics
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.evaluation_interval = evaluation_interval
        self.retention = retention
        self.extra_args = list(extra_args)

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None, "prometheus not started"
        return self.workdir / "data"

    def _find(self) -> str:
        if self.openmetrics is not None:
            _find_binary("promtool")  # fail before any work when the backfill tool is missing
        return _find_binary("prometheus")

    def _prepare(self, workdir: Path) -> None:
        self.data_dir.mkdir(exist_ok=True)
        if self.openmetrics is not None:
            self._backfill(_find_binary("promtool"))
        self._write_config()

    def _write_config(self) -> None:
        assert self.workdir is not None
        config = {"global": {"evaluation_interval": self.evaluation_interval},
                  "rule_files": [str(p) for p in self.rule_files]}
        (self.workdir / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML

    def _after_ready(self) -> None:
        if self.openmetrics is not None:
            self._wait_for_data()

    def _command(self, port: int) -> list[str]:
        assert self.workdir is not None
        return [self._binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                *self.extra_args]

    def _backfill(self, promtool: str) -> None:
        assert self.workdir is not None and self.openmetrics is not None
        src = self.openmetrics
        if isinstance(src, Path) or ("\n" not in src and os.path.isfile(src)):
            path = Path(src)
        else:
            path = self.workdir / "backfill.om"
            path.write_text(src)
        res = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                              str(path), str(self.data_dir)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"promtool backfill of {path} failed (exit {res.returncode}): "
                               f"{(res.stderr or res.stdout).strip()}")

    def _wait_for_data(self) -> None:
        """/-/ready already implies the blocks are open; this guards against an empty TSDB."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.client().metric_names(0, time.time() + 86400 * 365):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"backfilled data not queryable after {READY_TIMEOUT:.0f}s "
                                   f"(empty input?); log tail:\n{self._log_tail()}")
            time.sleep(0.1)

    def load_rules(self, rule_files: Sequence[Path]) -> None:
        """Evaluate `rule_files` from now on instead (none: stop evaluating); a reload, not a restart."""
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self._write_config()
        self.reload()

    def reload(self) -> None:
        """Re-read prometheus.yml and the rule files (POST /-/reload)."""
        r = requests.post(self.url + "/-/reload", timeout=30)
        if not r.ok:
            raise RuntimeError(f"prometheus reload failed ({r.status_code}): {r.text.strip()}")

    def query(self, expr: str, time: float | datetime | None = None) -> list[Any]:
        """Instant query; returns `data.result` (for scalars: `[ts, "value"]`)."""
        at = time.timestamp() if isinstance(time, datetime) else time
        return self.client().query(expr, at, timeout=30)

    def client(self) -> PromClient:
        """The product's own client, pointed at this server."""
        return PromClient(self.url, timeout=30)


class LocalAlertmanager(_Server):
    """An Alertmanager with gossip disabled (it would otherwise bind 0.0.0.0:9094)."""

    _name = "alertmanager"

    def __init__(self, config_text: str, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.config_text = config_text

    def _find(self) -> str:
        return _find_binary("alertmanager", "prometheus-alertmanager")  # Debian's name

    def _prepare(self, workdir: Path) -> None:
        (workdir / "alertmanager.yml").write_text(self.config_text)
        (workdir / "data").mkdir(exist_ok=True)

    def _command(self, port: int) -> list[str]:
        assert self.workdir is not None
        return [self._binary, f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts (labels, annotations, startsAt, endsAt, generatorURL)."""
        r = requests.post(self.url + "/api/v2/alerts", json=alerts, timeout=10)
        if not r.ok:
            raise RuntimeError(f"posting alerts failed ({r.status_code}): {r.text.strip()}")

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts Alertmanager currently holds."""
        r = requests.get(self.url + "/api/v2/alerts", timeout=10)
        r.raise_for_status()
        return r.json()
