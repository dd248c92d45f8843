"""Benchmark: `diagnose` wall time and HTTP query count on synthetic clusters in a real Prometheus.

Each cluster is one `scenario.from_dict` model with N vLLM pods of 8 GPUs (dcgm-exporter series), at a
coarse 150s sample step so the backfill stays quick, with two faults (KV-cache pressure on two pods, an
XID on a third). Prometheus gets the raw series only, so every query runs in raw mode: the worst case,
where the recorded series are rebuilt from engine metrics inside each query.

    .venv/bin/python -m bench.bench_diagnose              # 100 and 1,000 pods
    .venv/bin/python -m bench.bench_diagnose --pods 100 --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from diagnose import engine
from diagnose.localprom import LocalPrometheus, write_openmetrics
from generators import scenario
from generators.config import load_config


def cluster(pods: int, gpus: int) -> scenario.Scenario:
    return scenario.from_dict({
        "name": f"bench-{pods}", "engine": "vllm", "version": "0.33", "duration": "85m", "step": "150s",
        "incident_at": "85m", "model": "Qwen/Qwen2.5-7B-Instruct",
        "labels": {"namespace": "llm", "workload_name": "chat", "backend": "vllm"},
        "pods": [{"name": f"chat-{i}", "gpus": gpus} for i in range(pods)],
        "events": [
            {"at": "60m", "pods": ["chat-1", "chat-2"], "set": {"kv_usage": 0.99, "preemption_rate": 1.5,
                                                               "waiting": 12, "ttft": 3.0, "itl": 0.12}},
            {"at": "62m", "pods": ["chat-3"], "set": {"xid": 79, "error_ratio": 0.5}},
        ]})


def measure(pods: int, gpus: int, repeat: int) -> dict:
    sc = cluster(pods, gpus)
    t0 = time.monotonic()
    series = scenario.synthesize(sc)
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp:
        path = Path(tmp) / "cluster.om"
        with path.open("w") as out:
            samples = write_openmetrics(series, out)
        n_series = len(series)
        del series
        t1 = time.monotonic()
        with LocalPrometheus(path) as prom:
            load = time.monotonic() - t1
            cfg = load_config(None)
            walls, report = [], None
            for _ in range(repeat + 1):  # the first run warms Prometheus' caches and is not counted
                start = time.monotonic()
                report = engine.run(prom.url, engine.Scope(), sc.start + sc.incident_at, "15m", cfg)
                walls.append(time.monotonic() - start)
    top = report.root_causes[:2] if report else []
    return {"pods": pods, "gpus": pods * gpus, "series": n_series, "samples": samples,
            "synth_s": t1 - t0, "load_s": load, "wall_s": statistics.median(walls[1:]), "max_s": max(walls[1:]),
            "queries": report.queries, "errors": len(report.errors), "status": report.status,
            "top": ", ".join(f"{r.cause}({len(r.findings)})" for r in top)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", default="100,1000", help="comma-separated cluster sizes (default 100,1000)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per pod (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="measured runs per size (median reported)")
    args = p.parse_args(argv)
    rows = [measure(int(n), args.gpus, args.repeat) for n in args.pods.split(",")]
    print("| pods | GPUs | series | samples | backfill+start s | diagnose wall s (median / max) "
          "| HTTP queries | errors | status | top causes (entities) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['pods']} | {r['gpus']} | {r['series']:,} | {r['samples']:,} | {r['load_s']:.1f} "
              f"| {r['wall_s']:.2f} / {r['max_s']:.2f} | {r['queries']} | {r['errors']} | {r['status']} | {r['top']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
