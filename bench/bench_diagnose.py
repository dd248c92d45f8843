"""Benchmark: `diagnose` wall time and HTTP query count on synthetic clusters in a real Prometheus.

Each cluster is one `scenario.from_dict` model with N vLLM pods of 8 GPUs (dcgm-exporter series), at a
coarse 150s sample step so the backfill stays quick, with two faults (KV-cache pressure on every tenth
pod, an XID on one more). Two modes are measured on the same data:
  recorded  the inferwatch recording rules are deployed: their history is backfilled with
            `promtool tsdb create-blocks-from rules` (three passes: rules read earlier rules' output)
  raw       no recording rules: every query rebuilds the normalized series from engine metrics

    .venv/bin/python -m bench.bench_diagnose              # 100 and 1,000 pods, both modes
    .venv/bin/python -m bench.bench_diagnose --pods 100 --modes raw --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from inferwatch.diagnose import engine
from inferwatch.sandbox.backfill import record_history
from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.sandbox import scenario
from inferwatch.core.config import load_config

STEP = "150s"


def cluster(pods: int, gpus: int) -> scenario.Scenario:
    return scenario.from_dict({
        "name": f"bench-{pods}", "engine": "vllm", "version": "0.33", "duration": "85m", "step": STEP,
        "incident_at": "85m", "model": "Qwen/Qwen2.5-7B-Instruct",
        "labels": {"namespace": "llm", "workload_name": "chat", "backend": "vllm"},
        "pods": [{"name": f"chat-{i}", "gpus": gpus} for i in range(pods)],
        "events": [
            {"at": "60m", "pods": [f"chat-{i}" for i in range(0, pods, 10)],
             "set": {"kv_usage": 0.99, "preemption_rate": 1.5, "waiting": 12, "ttft": 4.0, "itl": 0.15}},
            {"at": "62m", "pods": ["chat-3"], "set": {"xid": 79, "error_ratio": 0.5}},
        ]})


def measure(pods: int, gpus: int, repeat: int, modes: list[str]) -> list[dict]:
    sc = cluster(pods, gpus)
    series = scenario.synthesize(sc)
    cfg = load_config(None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp:
        path = Path(tmp) / "cluster.om"
        with path.open("w") as out:
            samples = write_openmetrics(series, out)
        n_series = len(series)
        del series
        t0 = time.monotonic()
        prom = LocalPrometheus(path, workdir=Path(tmp) / "prom").start()
        try:
            setup = {"raw": time.monotonic() - t0}
            for mode in sorted(modes, key=lambda m: m != "raw"):  # raw first: recording adds series
                if mode == "recorded":
                    t0 = time.monotonic()
                    prom = record_history(prom, sc.start, sc.end, cfg, Path(tmp) / "prom", STEP)
                    setup["recorded"] = time.monotonic() - t0
                walls, report = [], None
                for _ in range(repeat + 1):  # the first run warms Prometheus' caches and is not counted
                    start = time.monotonic()
                    report = engine.run(prom.url, engine.Scope(), sc.start + sc.incident_at, "15m", cfg)
                    walls.append(time.monotonic() - start)
                modes_seen = sorted({v["mode"] for v in report.sources.values()} - {"missing"})
                rows.append({"pods": pods, "gpus": pods * gpus, "series": n_series, "samples": samples,
                             "mode": "+".join(modes_seen), "setup_s": setup[mode],
                             "wall_s": statistics.median(walls[1:]), "max_s": max(walls[1:]),
                             "queries": report.queries, "errors": len(report.errors), "status": report.status,
                             "top": ", ".join(f"{r.cause}({len(r.findings)})" for r in report.root_causes[:2]),
                             "slowest": max(report.timings.items(), key=lambda kv: kv[1], default=("-", 0.0))})
        finally:
            prom.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", default="100,1000", help="comma-separated cluster sizes (default 100,1000)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per pod (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="measured runs per size (median reported)")
    p.add_argument("--modes", default="recorded,raw", help="recorded and/or raw (default both)")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    print("| pods | GPUs | raw series | raw samples | series read | setup s | diagnose wall s (median / max) "
          "| HTTP requests | errors | status | top causes (entities) | slowest request (s, last run) |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---|")
    for n in args.pods.split(","):
        for r in measure(int(n), args.gpus, args.repeat, modes):
            print(f"| {r['pods']} | {r['gpus']} | {r['series']:,} | {r['samples']:,} | {r['mode']} | {r['setup_s']:.0f} "
                  f"| {r['wall_s']:.2f} / {r['max_s']:.2f} | {r['queries']} | {r['errors']} | {r['status']} "
                  f"| {r['top']} | {r['slowest'][0]} {r['slowest'][1]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
