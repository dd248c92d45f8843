"""What the LoRA records cost on engines that have run many adapter sets, against the ladder they replaced.

vLLM exports `vllm:lora_requests_info` with the running and waiting adapters and `--max-loras` in its
labels, the value the time it was set, and keeps a series for every label set it has had. The records read
the newest series' numbers (core/records.py `label_number`). Baseline: the ladder that compared each
number's series with the target's newest, selecting every info series once per number (33 times). Both are
evaluated as `count()` on a real Prometheus over the same backfilled series; the values are compared too.

    python -m bench.bench_lora                                   # 2,500 pods x 20 series each
    python -m bench.bench_lora --pods 500 --series-per-pod 50
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from inferwatch.core.catalog import Source, load_catalog
from inferwatch.core.config import Config
from inferwatch.core.promql import BinOp, Expr, agg, any_of, check
from inferwatch.core.records import label_number, number_matchers
from inferwatch.sandbox.localprom import LocalPrometheus

from . import measure

SIGNALS = ("lora_adapters_running", "lora_adapters_waiting", "lora_adapters_max")
ADAPTERS = 40  # distinct adapter names the synthetic engines load
STEP, SPAN = 30, 600  # sample spacing and history, seconds


def ladder(src: Source, keys: tuple[str, ...]) -> Expr:
    """The baseline: each number's series compared with the target's newest, one comparison per number."""
    sel = src.selector()
    newest = agg("max", sel, keys)
    branches = [BinOp("==", sel.with_matchers(m), newest, on=keys, group_left=()) * 0 + k
                for k, m in number_matchers(src)]
    return agg("max", any_of(branches), keys)


def exposition(pods: int, per_pod: int, now: int) -> str:
    """OpenMetrics text: `per_pod` info series per pod (adapter sets of 0-4 running, 0-2 waiting, max 4-7),
    each set at its own time, sampled every STEP over SPAN."""
    lines = ["# TYPE vllm:lora_requests_info gauge"]
    for p in range(pods):
        pod = f'namespace="ns{p % 20}",workload_name="w{p // 25}",pod="pod-{p}",inference_instance="pod-{p}"'
        for s in range(per_pod):
            running = ",".join(f"a{(s + j) % ADAPTERS}" for j in range(s % 5))
            waiting = ",".join(f"a{(s + j) % ADAPTERS}" for j in range(s % 3))
            labels = f'{pod},max_lora="{4 + s % 4}",running_lora_adapters="{running}",waiting_lora_adapters="{waiting}"'
            value = now - SPAN + s * 7 + p % 7
            lines += [f"vllm:lora_requests_info{{{labels}}} {value} {t}" for t in range(now - SPAN, now, STEP)]
    return "\n".join(lines + ["# EOF", ""])


def _values(prom: LocalPrometheus, expr: Expr, at: float) -> list:
    return sorted((tuple(sorted(r["metric"].items())), r["value"][1]) for r in prom.client().query(check(expr), at))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_lora", description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=2500, help="vLLM pods with LoRA (default: 2500, half of 5,000 pods)")
    p.add_argument("--series-per-pod", type=int, default=20, help="adapter sets each engine has run (default: 20)")
    p.add_argument("--rounds", type=int, default=3, help="the least CPU of this many rounds is kept (default: 3)")
    args = p.parse_args(argv)
    if min(args.pods, args.series_per_pod, args.rounds) < 1:
        p.error("--pods, --series-per-pod and --rounds must be at least 1")
    keys = Config().labels.pod_identity()
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-lora-") as tmp:
        root = Path(tmp)
        (root / "in.om").write_text(exposition(args.pods, args.series_per_pod, now))
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(root / "in.om"),
                        str(root / "prom" / "data")], check=True, capture_output=True)
        rows = []
        with LocalPrometheus(None, workdir=root / "prom") as prom:
            at = now - STEP / 2
            for name in SIGNALS:
                src = load_catalog("vllm").of(name)[0]
                old, new = ladder(src, keys), label_number(src, keys)
                cpu = measure.least_cpu(prom, [old, new], at, args.rounds)
                same = _values(prom, old, at) == _values(prom, new, at)
                rows.append(f"| `{name}` | {cpu[0] * 1000:,.0f} | {cpu[1] * 1000:,.0f} | {cpu[0] / cpu[1]:.1f}x | "
                            f"{'yes' if same else 'NO'} |")
    print(f"{args.pods:,} pods x {args.series_per_pod} `vllm:lora_requests_info` series "
          f"({args.pods * args.series_per_pod:,}); CPU ms per evaluation, least of {args.rounds} rounds\n")
    print("| record | ladder (baseline) | each series once | saved | same values |\n|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
