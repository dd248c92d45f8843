"""Benchmark: diagnosis accuracy on simulated incidents, beside a BARO-style baseline (bench/baro.py).

One seed set is simulated (bench/incidents.py: every cause id in several variants, healthy cases, two
concurrent faults, red herrings), backfilled into one real Prometheus, and `diagnose` runs once per
incident, scoped to the incident's namespace, at the end of the scenario (85 min; onsets 8-15 min
before). Printed per seed set, for ours and the baseline: AC@1 (top cause is an expected cause),
AC@3 (share of expected causes in the top three), entity accuracy (the top cause names exactly the
expected pods, or GPUs for GPU causes), healthy-correct, and a confusion matrix. The baseline's
healthy threshold is tuned on the first (tuning) seed set and reused on the others (held out).

    .venv/bin/python -m bench.bench_accuracy                  # tune seeds 1, held-out seeds 2
    .venv/bin/python -m bench.bench_accuracy --seeds 1 2 3 --variants 4 --workers 2
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from inferwatch.core.config import load_config
from inferwatch.diagnose import engine
from inferwatch.diagnose.scope import Scope
from inferwatch.sandbox import scenario
from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics

from . import baro
from .incidents import DURATION_MIN, GPU_CAUSES, Incident, incidents

HEALTHY = "healthy"


@dataclass
class Verdict:
    incident: Incident
    ranked: list[tuple[str, frozenset[str]]]  # (cause, entities), best first; [] = healthy
    seconds: float = 0.0


def _scenario(inc: Incident, seed: int) -> dict:
    return {"name": inc.name, "engine": inc.engine, "version": inc.version, "duration": f"{DURATION_MIN}m",
            "step": "60s", "seed": seed, "models": inc.models}


def _entities(root: dict, cause: str) -> frozenset[str]:
    if cause in GPU_CAUSES:
        return frozenset(f"{e['pod']}/{e['gpu']}" if e.get("gpu") is not None else e["pod"] for e in root["entities"])
    return frozenset(e["pod"] for e in root["entities"])


def run_incident(inc: Incident, seed: int) -> tuple[Verdict, list[baro.Ranked]]:
    """Simulate one incident into its own Prometheus (a cluster of its own), diagnose it at the end of
    the scenario, and score the same series with the baseline."""
    sc = scenario.from_dict(_scenario(inc, seed))
    series = scenario.synthesize(sc)
    at = sc.end
    with tempfile.TemporaryDirectory(prefix="inferwatch-acc-") as tmp:
        path = Path(tmp) / "incident.om"
        with path.open("w") as out:
            write_openmetrics(series, out)
        prom = LocalPrometheus(path, workdir=Path(tmp) / "prom").start()
        try:
            t0 = time.monotonic()
            report = engine.run(prom.url, Scope(namespace=inc.namespace), at, "15m", load_config(None)).to_dict()
            seconds = time.monotonic() - t0
        finally:
            prom.stop()
    if report["errors"]:
        print(f"  {inc.name}: {len(report['errors'])} node queries failed, e.g. {report['errors'][0]}")
    ranked = [(r["cause"], _entities(r, r["cause"])) for r in report["root_causes"]]
    scores = baro.rank(baro.candidates(series, inc.namespace), at - 900, at - 900 - 3600, at)
    return Verdict(inc, ranked, seconds), scores


def evaluate(seed: int, variants: int, workers: int) -> tuple[list[Verdict], list]:
    items = incidents(seed, variants)
    t0 = time.monotonic()
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(run_incident, items, [seed] * len(items)))
    print(f"seed {seed}: {len(items)} incidents simulated and diagnosed in {time.monotonic() - t0:.0f}s")
    return [v for v, _ in done], [(v.incident, scores) for v, scores in done]


def baseline(scores, threshold: float) -> list[Verdict]:
    return [Verdict(inc, [(r.cause, r.entities) for r in ranked if r.score >= threshold][:5]) for inc, ranked in scores]


def grade(verdicts: list[Verdict]) -> dict:
    faults = [v for v in verdicts if v.incident.kind != "healthy"]
    healthy = [v for v in verdicts if v.incident.kind == "healthy"]
    ac1 = sum(bool(v.ranked) and v.ranked[0][0] in v.incident.causes for v in faults)
    ac3 = sum(len({c for c, _ in v.ranked[:3]} & set(v.incident.causes)) / len(v.incident.causes) for v in faults)
    ent = sum(bool(v.ranked) and v.ranked[0][0] in v.incident.causes
              and v.ranked[0][1] == frozenset(v.incident.causes[v.ranked[0][0]]) for v in faults)
    ok = sum(not v.ranked for v in healthy)
    confusion: Counter = Counter()
    for v in verdicts:
        for cause in v.incident.causes or {HEALTHY: set()}:
            confusion[(cause, v.ranked[0][0] if v.ranked else HEALTHY)] += 1
    return {"AC@1": ac1 / len(faults), "AC@3": ac3 / len(faults), "entity": ent / len(faults),
            "healthy": ok / len(healthy) if healthy else 1.0, "n": len(verdicts), "confusion": confusion,
            "misses": [(v.incident.name, sorted(v.incident.causes), [c for c, _ in v.ranked[:3]])
                       for v in verdicts if (v.ranked[0][0] if v.ranked else HEALTHY)
                       not in (v.incident.causes or {HEALTHY: 0})
                       or (v.ranked and v.incident.causes and v.ranked[0][1] != frozenset(v.incident.causes[v.ranked[0][0]]))]}


def _key(g: dict) -> float:
    return g["AC@1"] + g["healthy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="first: tuning set; others: held out")
    ap.add_argument("--variants", type=int, default=4, help="variants per cause id")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--misses", action="store_true", help="list the incidents each got wrong")
    args = ap.parse_args()
    rows, threshold = [], None
    for i, seed in enumerate(args.seeds):
        ours, scores = evaluate(seed, args.variants, args.workers)
        if threshold is None:
            grid = [1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200]
            threshold = max(grid, key=lambda t: (_key(grade(baseline(scores, t))), -t))
        role = "tune" if i == 0 else "held-out"
        for name, verdicts in (("inferwatch", ours), (f"BARO (threshold {threshold:g})", baseline(scores, threshold))):
            g = grade(verdicts)
            rows.append((role, seed, name, g))
            if args.misses:
                print(f"  misses of {name} on seed {seed}:")
                for m in g["misses"]:
                    print(f"    {m[0]}: expected {m[1]}, got {m[2]}")
        wall = sorted(v.seconds for v in ours)
        print(f"  diagnose wall time per incident: median {wall[len(wall) // 2]:.2f}s, max {wall[-1]:.2f}s")
    print()
    print(f"{'set':<9} {'seed':>4} {'method':<26} {'n':>3} {'AC@1':>6} {'AC@3':>6} {'entity':>7} {'healthy':>8}")
    for role, seed, name, g in rows:
        print(f"{role:<9} {seed:>4} {name:<26} {g['n']:>3} {g['AC@1']:>6.2f} {g['AC@3']:>6.2f} {g['entity']:>7.2f} "
              f"{g['healthy']:>8.2f}")
    for role, seed, name, g in rows:
        _confusion(f"{name}, seed {seed} ({role})", g["confusion"])


def _confusion(title: str, confusion: Counter) -> None:
    expected = sorted({e for e, _ in confusion})
    got = sorted({g for _, g in confusion})
    short = {c: c.replace("gpu_", "g_").replace("_", "")[:8] for c in got}
    print(f"\nconfusion: {title} (rows expected, columns top cause)")
    print(" " * 24 + " ".join(f"{short[g]:>8}" for g in got))
    for e in expected:
        print(f"{e:<24}" + " ".join(f"{confusion.get((e, g), 0) or '.':>8}" for g in got))


if __name__ == "__main__":
    main()
