"""Where the rules' CPU goes: Prometheus CPU per rule, on a synthetic cluster, rule by rule.

`bench_rules` sees a cycle as a whole; this splits it. It backfills a cluster, lets Prometheus evaluate
the shipped rules for a few cycles (so every recorded series the later tiers read exists), restarts it
without rules, then evaluates each rule's expression at one fixed moment as `count(<expr>)` (so encoding
the answer costs nothing) and charges the rule the Prometheus CPU this took (`process_cpu_seconds_total`,
10 ms resolution: each expression runs --repeat times; --rounds rounds time every expression once each,
floors included, and the least is kept). The sum is close to one cycle's CPU. Beside it,
on the same TSDB, the floor (bench/rulesets.py): one 5-minute rate() of every raw series the rules rate
and one sample of every other raw series they read, and the instant floor (every raw series once).

    python -m bench.rule_cpu                          # 100 pods, SGLang worst case (8 ranks)
    python -m bench.rule_cpu --pods 100 --sglang-ranks 1 --top 10
    git archive 0271c34 rules/prometheus/rules | tar -x -C /tmp/before
    python -m bench.rule_cpu --pods 1000 --sglang-ranks 1 --compare /tmp/before/rules/prometheus/rules

`--compare` times another rule set's version of every rule whose expression differs right after ours, on
the same TSDB: a change is judged side by side, since two profiles on this shared machine differ by a
third between runs (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import sys
import yaml
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from inferwatch.sandbox.localprom import LocalPrometheus
from inferwatch.core.config import Config, duration_seconds
from inferwatch.core.promql import Expr
from inferwatch.core.rules import RuleGroup

from . import cluster, measure, rulesets, tsdb

FILL_SECONDS = 60.0  # rule cycles before the snapshot: the pod -> model -> alert chain is filled
INTERVAL = 10


@dataclass(frozen=True)
class RuleCpu:
    group: str
    rule: str  # record or alert name, with its quantile label if any
    seconds: float  # Prometheus CPU per evaluation
    compared: float | None = None  # the --compare rule set's version of the rule, where it differs
    share: float = 1.0  # evaluations per cycle: a group evaluated every 4 cycles (the GPU mapping) 0.25

    @property
    def per_cycle(self) -> float:
        return self.seconds * self.share


@dataclass(frozen=True)
class Text(Expr):
    """A rule expression as another rule set's file holds it."""
    text: str

    def render(self) -> str:
        return f"({self.text})"


def rule_key(group: str, name: str, labels: dict) -> tuple:
    """A rule's identity across rule sets: group, name and static labels (a -pd group records names of its
    engine's group; burn tiers share the alert name)."""
    return (group, name, tuple(sorted((labels or {}).items())))


def load_rules(folder: Path) -> dict[tuple, str]:
    """Rule key -> expression of every rule in a folder of Prometheus rule files."""
    out = {}
    for path in sorted(folder.glob("*.yaml")):
        for g in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for r in g.get("rules", []):
                out[rule_key(g["name"], r.get("record") or r["alert"], r.get("labels") or {})] = r["expr"]
    return out


@dataclass(frozen=True)
class Profile:
    rules: list[RuleCpu]
    floor: float    # CPU seconds of rulesets.floor
    instant: float  # CPU seconds of selecting every raw series once
    raw_series: int
    written: int    # series in the head after the rule cycles: the recorded series (and ALERTS)
    rss_bytes: int  # Prometheus resident memory at the end of the rule cycles


def profile(spec: cluster.ClusterSpec, groups: tuple[RuleGroup, ...], root: Path, repeat: int,
            window: str, rounds: int = 1, fill: float = FILL_SECONDS, other: dict[tuple, str] | None = None) -> Profile:
    data = tsdb.backfill(spec, root, gaps=[5.0])[0]
    time.sleep(max(0.0, data.last_sample - time.time()))
    workdir = root / "prom"
    workdir.mkdir()
    data.blocks.rename(workdir / "data")
    files = rulesets.RuleSet("layered", groups, "").write(root / "rules")
    with LocalPrometheus(None, rule_files=files, evaluation_interval=f"{INTERVAL}s", workdir=workdir) as prom:
        time.sleep(fill)
        totals = measure.scrape(prom.url)[1]
    at = time.time() - INTERVAL / 2  # after the last evaluation of every group, inside the lookback
    late = at - data.last_sample
    if late > duration_seconds(window) / 2:
        why = "--fill" if late < fill + 30 else "the backfill overran its prediction"
        print(f"warning: measuring {late:.0f}s after the last raw sample ({why}): rate windows are less than half "
              "full, for the rules and the floors alike", file=sys.stderr)
    rules, items = [], []  # (group, name, index of ours in items, theirs differs, share); what is timed
    for g in groups:
        for r in g.rules:
            name = getattr(r, "record", None) or r.alert
            theirs = (other or {}).get(rule_key(g.name, name, r.labels))
            rules.append((g.name, name + (f'{{quantile="{r.labels["quantile"]}"}}' if "quantile" in r.labels else ""),
                          len(items), theirs is not None and theirs.strip() != r.expr.render(),
                          INTERVAL / duration_seconds(g.interval)))
            items.append(r.expr)
            if rules[-1][3]:
                items.append(Text(theirs))
    floors = list(rulesets.floor(groups, window).exprs())
    first_floor = len(items)
    items += floors + [rulesets.RAW_SERIES]
    with LocalPrometheus(None, workdir=workdir) as prom:  # same TSDB, no rules: nothing else runs
        best = measure.least_cpu(prom, items, at, rounds, repeat)  # rules and floors in the same rounds
    out = [RuleCpu(g, name, best[i], best[i + 1] if differs else None, share)
           for g, name, i, differs, share in rules]
    floor, instant = sum(best[first_floor:-1]), best[-1]
    return Profile(out, floor, instant, data.series, int(totals.get("prometheus_tsdb_head_series", 0)),
                   int(totals.get("process_resident_memory_bytes", 0)))


def report(p: Profile, top: int) -> str:
    rows = p.rules
    total = sum(r.per_cycle for r in rows) or 1.0
    by_group: dict[str, float] = {}
    for r in rows:
        by_group[r.group] = by_group.get(r.group, 0.0) + r.per_cycle
    lines = [f"Total: {total * 1000:,.0f} ms CPU per cycle ({INTERVAL}s) for {len(rows)} rules; {p.raw_series:,} raw "
             f"series, {p.written:,} written ({p.written / max(1, p.raw_series):.0%}), Prometheus RSS "
             f"{p.rss_bytes / 2**20:,.0f} MiB with the rules running", "",
             "| rules CPU ms | floor CPU ms | rules / floor | instant floor CPU ms | rules / instant floor |",
             "|---:|---:|---:|---:|---:|",
             f"| {total * 1000:,.0f} | {p.floor * 1000:,.0f} | {total / max(p.floor, 1e-3):.1f}x | "
             f"{p.instant * 1000:,.0f} | {total / max(p.instant, 1e-3):.1f}x |", "",
             "| group | CPU ms per cycle | share |", "|---|---:|---:|"]
    lines += [f"| {g} | {s * 1000:,.0f} | {s / total:.0%} |" for g, s in sorted(by_group.items(), key=lambda x: -x[1])]
    changed = [r for r in rows if r.compared is not None]
    if changed:
        lines += ["", "| rule (expression differs) | group | ours CPU ms | compared CPU ms |", "|---|---|---:|---:|"]
        lines += [f"| `{r.rule}` | {r.group} | {r.seconds * 1000:,.1f} | {r.compared * 1000:,.1f} |" for r in changed]
    lines += ["", "| rule | group | CPU ms per evaluation | evaluations per cycle |", "|---|---|---:|---:|"]
    lines += [f"| `{r.rule}` | {r.group} | {r.seconds * 1000:,.1f} | {r.share:g} |"
              for r in sorted(rows, key=lambda r: -r.per_cycle)[:top]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.rule_cpu", description=__doc__.split("\n\n")[0],
                                epilog="About 3 minutes at 100 pods on 2 cores (backfill, one minute of rule "
                                       "cycles, then 216 rules x --repeat queries).")
    p.add_argument("--pods", type=int, default=100, help="cluster size (default: 100; 25 pods per model)")
    p.add_argument("--sglang-ranks", type=int, default=8, choices=range(1, 9), metavar="1-8",
                   help="SGLang scheduler ranks reporting per TP=8 pod (default: 8, the worst case; 1 is "
                        "SGLang's default)")
    p.add_argument("--repeat", type=int, default=5, help="evaluations per rule, CPU averaged (default: 5)")
    p.add_argument("--top", type=int, default=25, help="rules listed, most expensive first (default: 25)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds, each timing every expression (rules and floors) --repeat times; the cheapest "
                        "kept per expression (default: 1; a shared machine only adds CPU)")
    p.add_argument("--fill", type=float, default=FILL_SECONDS,
                   help=f"seconds of rule cycles before measuring (default: {FILL_SECONDS:.0f}; 180 at 5,000 pods)")
    p.add_argument("--compare", type=Path, metavar="DIR",
                   help="a folder of Prometheus rule files (another version of ours): every rule of the same name "
                        "whose expression differs is timed right after ours, on the same TSDB")
    args = p.parse_args(argv)
    if args.compare is not None and not args.compare.is_dir():
        p.error(f"--compare {args.compare}: not a folder")
    if args.pods < 2 or min(args.repeat, args.rounds) < 1 or args.top < 0 or args.fill <= 0:
        p.error("--pods must be at least 2, --repeat, --rounds and --fill positive, --top not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        other = load_rules(args.compare) if args.compare else None
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"--compare {args.compare}: not a folder of Prometheus rule files ({type(e).__name__}: {first})",
              file=sys.stderr)
        return 2
    spec = cluster.ClusterSpec(pods=args.pods, models=max(2, args.pods // 25),
                               sglang_ranks=args.sglang_ranks)
    cfg = Config()
    groups = rulesets.layered(cfg, f"{INTERVAL}s").groups
    with tempfile.TemporaryDirectory(prefix="inferwatch-rule-cpu-") as tmp:
        rows = profile(spec, groups, Path(tmp), args.repeat, cfg.recording.rate_window, args.rounds, args.fill,
                       other)
    print(f"{args.pods} pods, {args.sglang_ranks} SGLang rank(s) reporting; {args.repeat} evaluations per rule, "
          f"least of {args.rounds} round(s)\n")
    print(report(rows, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
