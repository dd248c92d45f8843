"""What inferwatch's rules cost at scale, measured by a real Prometheus on a synthetic cluster.

For each cluster size: simulate N pods (vLLM and SGLang, 8 GPUs each; bench/cluster.py), backfill them into a TSDB
whose last sample is "now" (or, with --storage head, write them into the running Prometheus' head, their
samples running past the measurement), then run two Prometheus processes one after the other on copies
of it: the raw rule set (the same conditions inlined onto engine metrics) and the layered set inferwatch
ships. Prints markdown tables: per group, then one summary row per size. Not a test: it takes minutes.

    python -m bench.bench_rules                   # 100 and 1,000 pods, SGLang worst case and default
    python -m bench.bench_rules --pods 1000 --sglang-ranks 1 --skip-raw --interval 30
    python -m bench.bench_rules --pods 1000 --sglang-ranks 1 --skip-raw --interval 30 --storage head --profile 60
    python -m bench.bench_rules --pods 100 --with-5000
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from inferwatch.core.config import Config, duration_seconds

from . import cluster, measure, rulesets, tsdb

STARTUP_SECONDS = 15.0  # Prometheus start on the copied blocks, with headroom
# --storage head: simulating and writing a cluster took 55 s at 1,000 pods and 232 s at 5,000 on 2 cores;
# the data runs this far ahead of the load, so a slower load does not empty the measured windows
LOAD_SECONDS, LOAD_SECONDS_PER_POD = 60.0, 0.08
STORAGE = {"blocks": "backfilled blocks", "head": "the head (remote write)"}


@dataclass(frozen=True)
class SizeResult:
    spec: cluster.ClusterSpec
    data: tsdb.Backfill
    layered: measure.RunCost
    raw: measure.RunCost | None  # None with --skip-raw
    floor: measure.RunCost  # the floor's expressions as rules (rulesets.floor_rules), measured like layered
    layered_set: rulesets.RuleSet
    raw_set: rulesets.RuleSet


def measure_size(spec: cluster.ClusterSpec, cfg: Config, args: argparse.Namespace, root: Path) -> SizeResult:
    interval = f"{args.interval}s"
    sets = (rulesets.layered(cfg, interval), rulesets.raw(cfg, interval))
    phase = STARTUP_SECONDS + (args.warmup + args.cycles + 2) * args.interval
    name = f"{spec.pods} pods, {spec.sglang_ranks} SGLang rank(s)"
    window = duration_seconds(cfg.recording.rate_window)
    floor = rulesets.floor(sets[0].groups, cfg.recording.rate_window)
    floors = {"rate": floor.exprs(), "instant": (rulesets.RAW_SERIES,)}
    # the floor as rules first, measured like the layered set on a copy of its own; then layered, then raw
    runs = [rulesets.floor_rules(floor, interval), sets[0]] + ([] if args.skip_raw else [sets[1]])
    env = {"GOGC": str(args.gogc)} if args.gogc else None
    copies: list[tsdb.Backfill] = []
    if args.storage == "blocks":
        log(f"{name}: synthesizing and backfilling")
        began = time.monotonic()
        copies = tsdb.backfill(spec, root, gaps=[STARTUP_SECONDS] + [phase] * (len(runs) - 1))
        log(f"{name}: {copies[0].series:,} series, {copies[0].samples:,} samples, "
            f"{time.monotonic() - began:.0f}s")
    costs: dict[str, measure.RunCost] = {}
    for i, rs in enumerate(runs):
        layered = rs is sets[0]
        warms = rs is not sets[1]  # the raw set has no recording chains to fill: no warm-up
        run = dict(interval=args.interval, window=window, warmup=args.warmup if warms else 0,
                   cycles=args.cycles if warms else args.raw_cycles,
                   timeout=600.0 if warms else args.raw_timeout, floors=floors if layered else None, env=env,
                   profile_seconds=args.profile if layered else 0)
        if args.storage == "blocks":
            data = copies[i]
            # Prometheus accepts rule results only after the newest backfilled sample: start just before it.
            time.sleep(max(0.0, data.last_sample - STARTUP_SECONDS / 3 - time.time()))
            log(f"{name}: {rs.name} run")
            costs[rs.name] = measure.run(data.blocks, rs.write(root / f"rules-{rs.name}"), root / f"run-{rs.name}",
                                         not_before=max(time.time(), data.last_sample + 1),
                                         last_sample=data.last_sample, **run)
            continue
        # head: the samples run on past the measurement, so every rate window it reads is full
        ahead = LOAD_SECONDS + LOAD_SECONDS_PER_POD * spec.pods + phase + (run["timeout"] if not warms else 0)
        end = time.time() + ahead
        timed = replace(spec, duration=f"{math.ceil(window + 120 + ahead)}s")

        def load(url: str, timed: cluster.ClusterSpec = timed, end: float = end) -> None:
            log(f"{name}: writing {timed.pods} pods into the head (remote write)")
            began = time.monotonic()
            copies.append(tsdb.load_head(timed, url, end))
            log(f"{name}: {copies[-1].series:,} series, {copies[-1].samples:,} samples, "
                f"{time.monotonic() - began:.0f}s; {rs.name} run")
        costs[rs.name] = measure.run(None, rs.write(root / f"rules-{rs.name}"), root / f"run-{rs.name}",
                                     not_before=time.time(), last_sample=end, load=load, **run)
    return SizeResult(spec, copies[0], costs["layered"], costs.get("raw"), costs["floor"], *sets)


def group_table(r: SizeResult) -> str:
    rows = [f"#### {r.spec.pods:,} pods, {r.spec.models} models, {_ranks(r)} ({r.data.series:,} raw series)", "",
            "| rule set | group | rules | eval ms (median) | series written | per pod |",
            "|---|---|---:|---:|---:|---:|"]
    for rs, cost in ((r.layered_set, r.layered), (r.raw_set, r.raw)):
        if cost is None:
            continue
        by_name = {g.name: g for g in cost.groups}
        for g in rs.groups:
            c = by_name[g.name]
            rows.append(f"| {rs.name} | {g.name} | {len(g.rules)} | {_ms(c.seconds, c.finished)} | {c.samples:,} | "
                        f"{c.samples / r.spec.pods:.1f} |")
        rows.append(f"| {rs.name} | **total** | {sum(len(g.rules) for g in rs.groups)} | "
                    f"**{_ms(cost.seconds, cost.finished)}** | {cost.samples:,} | {cost.samples / r.spec.pods:.1f} |")
    rows += ["", "Slowest layered rules (last evaluation):", ""]
    rows += [f"- {seconds * 1000:,.0f} ms `{rule}`" for rule, seconds in r.layered.slowest]
    if r.layered.profile:
        seconds, shares = r.layered.profile
        rows += ["", f"Where the layered process' CPU went ({seconds:.1f} CPU-s profiled, bench/profile.py):", "",
                 "| category | share |", "|---|---:|"]
        rows += [f"| {cat} | {share:.0%} |" for cat, share in shares]
    return "\n".join(rows)


def _ms(seconds: float, finished: bool) -> str:
    return f"{'≥ ' if not finished else ''}{seconds * 1000:,.0f}"


def summary_table(results: list[SizeResult]) -> str:
    rows = ["| pods | models | GPUs/pod | SGLang ranks | raw series | layered eval ms | layered CPU s/cycle "
            "| floor as rules CPU s/cycle | CPU / floor | queried rate floor CPU s | CPU / queried floor "
            "| instant floor CPU s | recorded series | per pod | recorded / raw | layered RSS MiB | raw eval ms "
            "| raw RSS MiB | raw / layered | window filled | missed evaluations |",
            "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        raw, fill = ("-", "-", "-"), min(r.layered.window_fill, r.floor.window_fill)
        if r.raw is not None:
            ratio = f"{'≥ ' if not r.raw.finished else ''}{r.raw.seconds / r.layered.seconds:.1f}x"
            raw, fill = (_ms(r.raw.seconds, r.raw.finished), f"{r.raw.rss_bytes / 2**20:.0f}", ratio), \
                min(fill, r.raw.window_fill)
        cpu, fl = r.layered.cpu_per_cycle, r.layered.floor_cpu or {}
        queried = (f"{fl['rate']:.2f} | {cpu / fl['rate']:.1f}x | {fl['instant']:.2f}" if fl.get("rate")
                   else "- | - | -")
        rows.append(f"| {r.spec.pods:,} | {r.spec.models} | {r.spec.gpus} | {_ranks(r)} | {r.data.series:,} | "
                    f"{r.layered.seconds * 1000:,.0f} | {cpu:.2f} | {r.floor.cpu_per_cycle:.2f} | "
                    f"{cpu / r.floor.cpu_per_cycle:.2f}x | {queried} | "
                    f"{r.layered.samples:,} | {r.layered.samples / r.spec.pods:.0f} | "
                    f"{r.layered.samples / r.data.series:.0%} | {r.layered.rss_bytes / 2**20:.0f} | "
                    f"{' | '.join(raw)} | {fill:.0%} | {r.layered.missed + r.floor.missed} |")
    return "\n".join(rows)


def _ranks(r: SizeResult) -> str:
    n = r.spec.sglang_ranks
    return "1 (default)" if n == 1 else f"{n} (all schedulers)"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 2**20
    prom = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} GiB RAM, {platform.platform()}; {prom}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_rules", description=__doc__.split("\n\n")[0],
        epilog="Each size, once per --sglang-ranks value: simulation, renaming and three backfills (about 5 min at 1,000 pods), "
               "the floor run, the layered run (a few minutes each), then the raw run (capped by --raw-timeout). "
               "1,000 pods take about 20 minutes per value and 5 GB of RAM at peak (the raw Prometheus) on 2 cores; "
               "--skip-raw saves a third. The floor is one 5m rate() of every raw series the rules rate plus one "
               "sample of every other raw series they read (bench/rulesets.py): no rule set reading them spends "
               "less. 'floor as rules' evaluates it as one rule group, measured exactly as the layered set (whole "
               "process CPU per cycle, same warm-up and cycles, its own copy of the data); 'queried rate floor' is "
               "the least of 3 rounds of each expression queried alone on an idle Prometheus. 'instant floor' "
               "selects every raw series once.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", default="100,1000", help="comma-separated cluster sizes (default: 100,1000)")
    p.add_argument("--with-5000", action="store_true", help="also run 5,000 pods (about 45 minutes with --skip-raw on 2 "
                   "cores; give it an --interval no evaluation overruns, see 'missed evaluations')")
    p.add_argument("--pods-per-model", type=int, default=25, help="models = pods / this (default: 25)")
    p.add_argument("--gpus", type=int, default=8, choices=range(1, 9), metavar="1-8",
                   help="GPUs per pod (default: 8; vLLM pods run two engines from 2 GPUs, SGLang TP=min(8, gpus))")
    p.add_argument("--interval", type=int, default=10, help="rule evaluation interval in seconds (default: 10)")
    p.add_argument("--warmup", type=int, default=3, help="evaluations skipped while recording chains fill")
    p.add_argument("--cycles", type=int, default=4, help="evaluations measured per group (median kept)")
    p.add_argument("--raw-cycles", type=int, default=2, help="evaluations measured per raw group (default: 2)")
    p.add_argument("--raw-timeout", type=float, default=240.0,
                   help="seconds to wait for the raw set; an unfinished group counts as at least that long")
    p.add_argument("--step", default="30s", help="sample spacing of the synthetic series (default: 30s)")
    p.add_argument("--sglang-ranks", default="8,1",
                   help="SGLang scheduler ranks reporting per TP=8 pod, one run each (default: 8,1): 8 is "
                        "--enable-metrics-for-all-schedulers (worst case), 1 is SGLang's default")
    p.add_argument("--storage", choices=("blocks", "head"), default="blocks",
                   help="where the simulated series live: 'blocks' (backfilled with promtool, rate windows partly "
                        "filled) or 'head' (written through remote write, as a live Prometheus holds its last hours: "
                        "full rate windows; about 3x the samples and 6x the memory)")
    p.add_argument("--gogc", type=int, default=0, metavar="PERCENT",
                   help="GOGC for every Prometheus started (rules and floors alike; default: Prometheus' own, 100 "
                        "in 2.42): the garbage collector's trade of memory for CPU")
    p.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                   help="after measuring, take a CPU profile of the layered run this long and print where the "
                        "CPU went (garbage collection, selecting series, operators, ...)")
    p.add_argument("--skip-raw", action="store_true",
                   help="measure only the layered rules (no raw comparison; about half the time)")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(x) for x in args.pods.split(",") if x.strip()] + ([5000] if args.with_5000 else [])
    except ValueError:
        p.error(f"--pods: expected numbers separated by commas, got {args.pods!r}")
    if not args.sizes or min(args.sizes) < 2:
        p.error("--pods: every size must be at least 2 pods")
    try:
        args.ranks = [int(x) for x in args.sglang_ranks.split(",") if x.strip()]
    except ValueError:
        p.error(f"--sglang-ranks: expected numbers separated by commas, got {args.sglang_ranks!r}")
    if not args.ranks or not all(1 <= n <= 8 for n in args.ranks):
        p.error("--sglang-ranks: every value must be 1 to 8 (the bench's SGLang pods run TP=8)")
    if args.profile < 0:
        p.error("--profile: seconds, 0 (no profile) or more")
    if args.gogc < 0:
        p.error("--gogc: a percentage, 1 or more (0 keeps Prometheus' default)")
    if min(args.interval, args.cycles, args.raw_cycles, args.pods_per_model) < 1 or args.warmup < 0:
        p.error("--interval, --cycles and --pods-per-model must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. `kill`) unwinds like Ctrl-C, so the Prometheus processes are stopped and temp dirs removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = Config()
    cfg = replace(cfg, recording=replace(cfg.recording, interval=f"{args.interval}s"))
    results = []
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp:
        for pods in args.sizes:
            for ranks in args.ranks:
                spec = cluster.ClusterSpec(pods=pods, models=max(2, pods // args.pods_per_model),
                                           step=args.step, sglang_ranks=ranks, gpus=args.gpus)
                try:
                    results.append(measure_size(spec, cfg, args, Path(tmp) / f"{pods}-{ranks}"))
                except RuntimeError as exc:  # a Prometheus that failed, stalled or refused: say which, stop
                    log(f"{pods} pods, {ranks} SGLang rank(s): {exc}")
                    return 1
                print(group_table(results[-1]) + "\n", flush=True)
    print(f"Machine: {machine()}\n")
    print(f"Raw side re-implements the {results[0].raw_set.compared}; evaluation interval {args.interval}s, "
          f"median of {args.cycles} evaluations per group; series in {STORAGE[args.storage]}; "
          f"GOGC={args.gogc or 'default (100)'}.\n")
    for note in results[0].raw_set.skipped:
        print(f"- not in the raw set (cannot be inlined): {note}")
    print()
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
