"""Benchmark: `diagnose` wall time and HTTP query count on simulated clusters in a real Prometheus.

Each cluster is one model with N vLLM pods of 8 GPUs (dcgm-exporter series), at a coarse 150s sample
step so the backfill stays quick, with two exogenous faults made into series by the simulator
(inferwatch/sandbox/sim/): the KV capacity of every tenth pod cut to a third (preemptions, queues,
TTFT), and an XID on one GPU of one more pod (failing requests). The simulator's cost grows with the
pods, so `TEMPLATE` pods are simulated and the cluster repeats them under new pod and node names: the
series count and shapes are those of N pods. Two modes are measured on the same data:
  recorded  the inferwatch recording rules are deployed: their history is backfilled with
            `promtool tsdb create-blocks-from rules` (in passes: rules read earlier rules' output)
  raw       no recording rules: every query rebuilds the normalized series from engine metrics

    .venv/bin/python -m bench.bench_diagnose              # 100 and 1,000 pods, both modes
    .venv/bin/python -m bench.bench_diagnose --pods 100 --modes raw --repeat 5
    .venv/bin/python -m bench.bench_diagnose --pods 1000 --modes recorded --timings  # seconds per request
    .venv/bin/python -m bench.bench_diagnose --pods 5000 --modes recorded  # ~25 min, under 2 GB resident

The copies are backfilled PODS_PER_PART pods at a time, each part into its own blocks, and each mode is
measured once Prometheus has merged those overlapping blocks (a minute or so after it starts).

The machine's load average is printed beside each row: on a shared box the minimum is the figure to compare,
and the CPU-seconds Prometheus spent per diagnosis (Linux /proc) is the figure other processes disturb least.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from inferwatch.diagnose import engine
from inferwatch.sandbox.backfill import record_history
from inferwatch.sandbox.localprom import LocalPrometheus
from inferwatch.sandbox import scenario
from inferwatch.core.config import load_config

from .tsdb import merge_parts, wait_merged, write_blocks

STEP = "150s"
TEMPLATE = 20  # pods simulated; a multiple of 10 keeps "every tenth pod" true in the copies
_NAMED = re.compile(r"\b(chat-|gpu-node-0-)(\d+)\b")  # pod and node names in any label value
PODS_PER_PART = 240  # copied, written and backfilled at once (a multiple of TEMPLATE): memory of one part
_UUID = "UUID"  # dcgm-exporter's GPU id: a copy's GPUs are other GPUs (joins on it must stay one-to-one)


def cluster(pods: int, gpus: int, kv_every: int = 10) \
        -> tuple[scenario.Scenario, Iterator[list[scenario.Series]]]:
    """The simulated template and the series of `pods` pods (copies of it, renamed), a part of about
    PODS_PER_PART pods at a time (only one part's label dicts exist at once); the KV capacity of every
    `kv_every`-th pod is cut."""
    k = min(pods, TEMPLATE)
    sc = scenario.from_dict({
        "name": f"bench-{pods}", "engine": "vllm", "version": "0.33", "duration": "85m", "step": STEP,
        "incident_at": "85m", "model": "Qwen/Qwen2.5-7B-Instruct",
        "labels": {"namespace": "llm", "workload_name": "chat", "backend": "vllm"},
        "pods": [{"name": f"chat-{i}", "gpus": gpus} for i in range(k)],
        "workload": {"rate": 3.0 * k, "generation": 300},
        "faults": [
            {"kind": "kv_capacity", "at": "70m", "pods": [f"chat-{i}" for i in range(0, k, kv_every)], "factor": 0.3},
            {"kind": "xid", "at": "72m", "pods": ["chat-3"], "gpus": [0], "code": 79, "errors": 0.5},
        ]})
    template = list(scenario.synthesize(sc))

    def copy(c: int) -> Iterator[scenario.Series]:
        shift = lambda m: f"{m[1]}{int(m[2]) + c}"  # noqa: E731
        for labels, samples in template:
            first = _NAMED.search(labels.get("pod", "") + " " + labels.get("exported_pod", ""))
            if (c == 0) if first is None else int(first[2]) + c < pods:
                renamed = {k_: _NAMED.sub(shift, v) for k_, v in labels.items()}
                if c and _UUID in renamed:
                    renamed[_UUID] += f"-{c}"
                yield renamed, samples

    def parts() -> Iterator[list[scenario.Series]]:
        size = k * max(1, PODS_PER_PART // k)
        for first in range(0, pods, size):
            yield [s for c in range(first, min(pods, first + size), k) for s in copy(c)]
    return sc, parts()


@dataclass
class Backfilled:
    """A cluster's Prometheus: raw series backfilled, then (`record`) the recording rules' history."""
    sc: scenario.Scenario
    prom: LocalPrometheus
    series: int
    samples: int
    setup: dict[str, float]  # seconds by mode

    def record(self, cfg) -> None:
        t0 = time.monotonic()
        self.prom = record_history(self.prom, self.sc.start, self.sc.end, cfg, self.prom.workdir, STEP)
        self.setup["recorded"] = time.monotonic() - t0

    def settle(self) -> float:
        """Wait until Prometheus has merged the overlapping blocks (the parts, the rules' passes): it does
        so on its own a minute or so after it starts. A Prometheus that scraped the cluster has no
        overlapping blocks, and a merge running meanwhile would share the CPU with the diagnoses. Returns
        the seconds waited."""
        return wait_merged(self.prom.data_dir)


def backfill(pods: int, gpus: int, kv_every: int, work: Path) -> Backfilled:
    """The cluster's raw series in a Prometheus working in `work`, a part at a time, each part its own
    blocks (Prometheus merges overlapping blocks)."""
    t0 = time.monotonic()
    sc, parts = cluster(pods, gpus, kv_every)
    (work / "data").mkdir(parents=True, exist_ok=True)
    n_series = samples = 0
    for n, part in enumerate(parts):
        samples += write_blocks(part, work / "part.om", work / "data" / f"part-{n}")
        n_series += len(part)
        del part
    merge_parts(work / "data")
    prom = LocalPrometheus(None, workdir=work).start()
    return Backfilled(sc, prom, n_series, samples, {"raw": time.monotonic() - t0})


def measure(pods: int, gpus: int, repeat: int, modes: list[str], timings: bool = False,
            kv_every: int = 10) -> list[dict]:
    cfg = load_config(None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp:
        b = backfill(pods, gpus, kv_every, Path(tmp) / "prom")
        try:
            for mode in sorted(modes, key=lambda m: m != "raw"):  # raw first: recording adds series
                if mode == "recorded":
                    b.record(cfg)
                b.setup[mode] += b.settle()
                sc, prom = b.sc, b.prom
                walls, cpus, loads, report = [], [], [], None
                for _ in range(repeat + 1):  # the first run warms Prometheus' caches and is not counted
                    start, cpu = time.monotonic(), cpu_seconds(prom.pid)
                    report = engine.run(prom.url, engine.Scope(), sc.start + sc.incident_at, "15m", cfg)
                    walls.append(time.monotonic() - start)
                    cpus.append(cpu_seconds(prom.pid) - cpu)
                    loads.append(os.getloadavg()[0])
                modes_seen = sorted({v["mode"] for v in report.sources.values()} - {"missing"})
                rows.append({"pods": pods, "gpus": pods * gpus, "series": b.series, "samples": b.samples,
                             "mode": "+".join(modes_seen), "setup_s": b.setup[mode],
                             "min_s": min(walls[1:]), "wall_s": statistics.median(walls[1:]),
                             "max_s": max(walls[1:]), "load": f"{min(loads[1:]):.1f}-{max(loads[1:]):.1f}",
                             "cpu_s": min(cpus[1:]), "queries": report.queries, "errors": len(report.errors),
                             "status": report.status, "rss": peak_rss_gb(prom.pid),
                             "top": ", ".join(f"{r.cause}({len(r.findings)})" for r in report.root_causes[:2]),
                             "slowest": max(report.timings.items(), key=lambda kv: kv[1], default=("-", 0.0))})
                if timings:
                    _print_timings(f"{pods} pods, {mode}", report)
        finally:
            b.prom.stop()
    return rows


def peak_rss_gb(pid: int) -> tuple[float, float, float]:
    """Peak resident memory (GB) of this process, of its largest finished child (promtool), and of the
    Prometheus process `pid` so far (Linux /proc/<pid>/status VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    prom = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 2**20, child / 2**20, prom / 2**20  # kB


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of a process so far (Linux /proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_timings(title: str, report) -> None:
    """Seconds per request of the last run, slowest first, with the node's error if it had one."""
    errors = {e["node"]: e["error"] for e in report.errors}
    print(f"\nrequests of the last run ({title}), seconds:")
    for name, seconds in sorted(report.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:6.2f}  {name}{'  ERROR ' + errors[name][:80] if name in errors else ''}")
    for name in sorted(set(errors) - set(report.timings)):
        print(f"     -    {name}  ERROR {errors[name][:80]}")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", default="100,1000", help="comma-separated cluster sizes (default 100,1000)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per pod (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="measured runs per size (median reported)")
    p.add_argument("--modes", default="recorded,raw", help="recorded and/or raw (default both)")
    p.add_argument("--timings", action="store_true", help="print the seconds of every request of the last run")
    p.add_argument("--kv-every", type=int, default=10, choices=(1, 2, 5, 10),
                   help="cut the KV capacity of every N-th pod (default 10: the model's errors are the symptom; "
                        "2: its latency too, so every cause node is queried)")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    print("| pods | GPUs | raw series | raw samples | series read | setup s | diagnose wall s (min / median / max) "
          "| load | Prometheus CPU s (min) | HTTP requests | errors | status | top causes (entities) "
          "| slowest request (s, last run) | peak RSS GB (bench / promtool / Prometheus) |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for n in args.pods.split(","):
        for r in measure(int(n), args.gpus, args.repeat, modes, args.timings, args.kv_every):
            print(f"| {r['pods']} | {r['gpus']} | {r['series']:,} | {r['samples']:,} | {r['mode']} | {r['setup_s']:.0f} "
                  f"| {r['min_s']:.2f} / {r['wall_s']:.2f} / {r['max_s']:.2f} | {r['load']} | {r['cpu_s']:.2f} "
                  f"| {r['queries']} | {r['errors']} | {r['status']} "
                  f"| {r['top']} | {r['slowest'][0]} {r['slowest'][1]:.2f} "
                  f"| {' / '.join(f'{g:.1f}' for g in r['rss'])} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
