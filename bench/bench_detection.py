"""Benchmark: how fast the shipped alerts detect incidents, under promtool's rule manager.

The incidents are the simulator's (bench/incidents.py, the set bench/bench_accuracy.py diagnoses: every
cause id in several variants, healthy cases, two concurrent faults, red herrings), one seed set to tune
on and the others held out. Each is simulated, fed to `promtool test rules` with a rule directory (the
generated `prometheus/rules/*.yaml`, evaluated every step in dependency order, `for:` included), and read
back from promtool's own `ALERTS`. Per incident, minutes after the fault onset (the expected causes' first
fault):

  first alert / first page   any inferwatch alert / a critical one, on any entity
  cause alert                an alert of the expected cause's failure mode (core/failures.py) on an
                             expected pod or GPU (model-tier cause alerts: on the pods' model)
  hard outage                the faulty model's worst 5m bad share (errors, TTFT, ITL) within 10 minutes
                             of onset is >= 50%: it must page within 3 minutes of turning hard, the
                             first minute its 2m bad share (page-outage's short window) reaches 50% (a
                             step fault: within a minute or two of the onset; a ramp: when the ramp
                             has made it hard)
  healthy                    every alert that fires over the whole run (must be none that pages or tickets)
  early                      fault incidents: pages or tickets first firing before the onset (false
                             alarms, or a baseline already breaching); an alert still firing at the onset
                             counts at minute 0

    .venv/bin/python -m bench.bench_detection                         # seeds 1 (tune) and 2 (held out)
    .venv/bin/python -m bench.bench_detection --rules OLD/prometheus/rules --label baseline
    .venv/bin/python -m bench.bench_detection --seeds 1 --variants 2 --list
    .venv/bin/python -m bench.bench_detection --causes lora_slots_exhausted,healthy --list   # a subset
    .venv/bin/python -m bench.bench_detection --scenarios demo-incident    # sandbox scenarios instead

Baselines: the rule files of another commit (`git archive <commit> rules/prometheus/rules | tar -x -C DIR`).
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from inferwatch.core.config import duration_seconds, load_config
from inferwatch.core.failures import BY_ID
from inferwatch.core.promql import regex_escape
from inferwatch.generate.slo import LATENCY_SIGNAL, le_pattern, variants
from inferwatch.generate.writer import render, rule_groups
from inferwatch.sandbox import scenario

from .incidents import DURATION_MIN, Incident, incidents

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# promtool evaluates groups in this order: the shipped dependency order (records, then alerts), also for
# --rules files of another version; a group inferwatch no longer ships runs last.
GROUP_ORDER = tuple(g.name for g in rule_groups(load_config(None)))
SLIS = 'llm_model:slo_(errors|ttft_slow|itl_slow):ratio_rate5m'
SHORT_SLIS = 'llm_model:slo_(errors|ttft_slow|itl_slow):ratio_rate2m'  # the page-outage tier's short window
PAGE_WITHIN, CAUSE_WITHIN, OUTAGE_SHARE = 3.0, 5.0, 0.5


@dataclass
class Case:
    """One incident to replay: its scenario, where the fault starts, and what a correct alert names."""
    name: str
    sc: scenario.Scenario
    onset: float                        # seconds from the start
    kind: str                           # fault | healthy | two-faults | red-herring
    causes: dict[str, list[str]]        # cause id -> expected pods or pod/gpu
    models: tuple[str, ...] = ()        # the faulty models (their SLIs decide a hard outage)


@dataclass
class Fired:
    alert: str
    severity: str
    minute: float  # first firing, minutes after onset
    labels: dict[str, str]


@dataclass
class Result:
    name: str
    kind: str
    onset: float
    causes: dict[str, list[str]]
    fired: list[Fired] = field(default_factory=list)   # firing at or after the onset (minute >= 0)
    before: list[Fired] = field(default_factory=list)  # first fired before the onset (minute < 0)
    worst_share: float = 0.0
    hard_onset: float = 0.0  # minutes after onset: the faulty model's 2m bad share first >= 50%
    cause_minute: float | None = None
    cause_alerts: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.kind == "healthy"

    def first(self, severity: str | None = None) -> float | None:
        ms = [f.minute for f in self.fired if f.minute >= 0 and (severity is None or f.severity == severity)]
        return min(ms) if ms else None

    @property
    def hard(self) -> bool:
        return not self.healthy and self.worst_share >= OUTAGE_SHARE

    @property
    def paged_in_time(self) -> bool:
        """Paged within 3 minutes of the outage turning hard (a fault that ramps in over minutes is not
        a hard outage from its first minute; a page before it turned hard counts as in time)."""
        page = self.first("critical")
        return page is not None and page <= self.hard_onset + PAGE_WITHIN

    @property
    def early(self) -> list[Fired]:
        """Pages or tickets that fired before the onset of a fault incident: false alarms, or a baseline
        that already breaches (bench/incidents.py keeps its baselines within the default objectives)."""
        return [] if self.healthy else [f for f in self.before if f.severity != "info"]


# ---- incidents -------------------------------------------------------------------------------

def simulated(seed: int, n_variants: int) -> list[Case]:
    """bench/incidents.py's incidents for one seed, as bench/bench_accuracy.py simulates them."""
    out = []
    for inc in incidents(seed, n_variants):
        sc = scenario.from_dict({"name": inc.name, "engine": inc.engine, "version": inc.version,
                                 "duration": f"{DURATION_MIN}m", "step": "60s", "seed": seed, "models": inc.models})
        out.append(Case(inc.name, sc, _onset(inc, sc), inc.kind, {c: sorted(e) for c, e in inc.causes.items()},
                        _faulty_models(inc)))
    return out


def only(cases: list[Case], causes: str | None) -> list[Case]:
    """The incidents expecting one of `causes` (`healthy`: the healthy ones), to iterate on a subset."""
    if not causes:
        return cases
    wanted = set(causes.split(","))
    return [c for c in cases if wanted & (set(c.causes) or {"healthy"})]


def _faulty_models(inc: Incident) -> tuple[str, ...]:
    pods = {e.split("/")[0] for entities in inc.causes.values() for e in entities}
    return tuple(m["model"] for m in inc.models if pods & {p["name"] for p in m["pods"]})


def _onset(inc: Incident, sc: scenario.Scenario) -> float:
    """The first fault of the faulty models (healthy incidents: the start; every alert counts)."""
    if inc.kind == "healthy":
        return 0.0
    faulty = set(_faulty_models(inc))
    return min(f.at for m in sc.models if m.model in faulty for f in m.sim.faults)


def sandbox(names: list[str]) -> list[Case]:
    """Named sandbox scenarios with an incident (`expect.status`, `top_cause` or `causes`)."""
    out = []
    for name in names:
        sc = scenario.load(name)
        healthy = sc.expect.get("status") == "healthy"
        if "fault_onset" in sc.expect:
            onset = duration_seconds(str(sc.expect["fault_onset"]))
        else:
            ats = [f.at for m in sc.models if m.sim for f in m.sim.faults if f.at > 0]
            ats += [e.at for m in sc.models for e in m.events if e.at > 0]
            onset = min(ats) if ats else (sc.incident_at or 0.0)
        if healthy:
            causes = {}
        elif sc.expect.get("causes"):
            causes = {c: list(p) for c, p in sc.expect["causes"].items()}
        else:
            causes = {sc.expect["top_cause"]: list(sc.expect.get("gpus") or sc.expect.get("pods") or [])}
        out.append(Case(name, sc, 0.0 if healthy else onset, "healthy" if healthy else "fault", causes))
    return out


# ---- one replay ------------------------------------------------------------------------------

def inputs(series: list[scenario.Series], les: set[str]) -> list[scenario.Series]:
    """Drop histogram buckets no alert reads (every `le` but the SLO thresholds): several times faster,
    and every series an alert reads stays identical."""
    return [(lb, s) for lb, s in series if not (lb["__name__"].endswith("_bucket") and lb.get("le") not in les)]


def staleness(entries: list[dict[str, str]], samples: int) -> list[dict[str, str]]:
    """A staleness marker where a series stops (its pod deleted, its target down, the engine gone), as a
    live Prometheus writes one at the first scrape that misses it; promtool writes none by itself, so a
    vanished series would otherwise linger for the 5-minute lookback and delay every alert on it."""
    out = []
    for e in entries:
        vals = e["values"].split()
        vals = [v if not (v == "_" and i and vals[i - 1] != "_") else "stale" for i, v in enumerate(vals)]
        if len(vals) < samples:  # ended before the run did
            vals.append("stale")
        out.append({**e, "values": " ".join(vals)})
    return out


def run(case: Case, rule_dir: Path, les: set[str], work: Path) -> Result:
    sc, onset = case.sc, case.onset
    res = Result(case.name, case.kind, onset, case.causes)
    step = f"{int(sc.step)}s"
    end = f"{int(sc.duration)}s"
    span = f"{int(sc.duration)}s:{step}"
    firing = 'timestamp(ALERTS{alertstate="firing", source="inferwatch"})'
    by = "min by (alertname, severity, model_name, pod, gpu, UUID, length)"
    # The first firing at or after the onset (an alert already firing then counts at minute 0), and the
    # first firing over the whole run (before the onset: a false alarm, or a baseline already breaching).
    # `or vector(-1)`: never empty, since promtool prints what it got only when it differs.
    since = f"{int(sc.duration - onset) + 1}s:{step}"
    first = f"{by} (min_over_time({firing}[{since}])) or vector(-1)"
    ever = f"{by} (min_over_time({firing}[{span}])) or vector(-1)"
    window = f"{int(max(60, min(600, sc.duration - onset)))}s"
    models = "|".join(regex_escape(m) for m in case.models) or ".*"
    slis = f'{{__name__=~"{SLIS}", model_name=~"{models}"}}'
    worst = f"max(max_over_time((max({slis}))[{window}:{step}])) or vector(0)"
    short = f'{{__name__=~"{SHORT_SLIS}", model_name=~"{models}"}}'
    hard_at = f"min_over_time(timestamp(max({short}) >= {OUTAGE_SHARE})[{window}:{step}]) or vector(-1)"
    files = sorted(str(p) for p in rule_dir.glob("*.yaml"))
    names = [g["name"] for f in files for g in (yaml.safe_load(Path(f).read_text()) or {}).get("groups", [])]
    order = sorted(names, key=lambda n: GROUP_ORDER.index(n) if n in GROUP_ORDER else len(GROUP_ORDER))
    at_worst = f"{int(min(onset + 600, sc.duration))}s"
    test = {"interval": step, "input_series": staleness(scenario.promtool_input_series(
                inputs(scenario.synthesize(sc), les), sc.start, sc.step), len(sc.times())),
            "promql_expr_test": [{"expr": first, "eval_time": end, "exp_samples": []},
                                 {"expr": ever, "eval_time": end, "exp_samples": []},
                                 {"expr": worst, "eval_time": at_worst, "exp_samples": []},
                                 {"expr": hard_at, "eval_time": at_worst, "exp_samples": []}]}
    doc = {"rule_files": files, "evaluation_interval": step, "group_eval_order": order, "tests": [test]}
    (work / "detect.test.yaml").write_text(yaml.dump(doc, Dumper=DUMPER, sort_keys=False, width=10_000))
    out = subprocess.run(["promtool", "test", "rules", "detect.test.yaml"], cwd=work, capture_output=True,
                         text=True, timeout=900)
    got = re.findall(r"got: (.*)", out.stderr)
    if len(got) != 4:
        raise RuntimeError(f"{case.name}: promtool said\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    for i, into in ((0, res.fired), (1, res.before)):
        for labels, value in _samples(got[i]):
            minute = (max(float(value), onset) - onset) / 60 if i == 0 else (float(value) - onset) / 60
            if "alertname" in labels and (i == 0 or minute < 0):  # promtool's clock starts at 0
                into.append(Fired(labels.pop("alertname"), labels.pop("severity", ""), minute, labels))
    res.worst_share = max((float(v) for _, v in _samples(got[2])), default=0.0)
    hard_at = max((float(v) for _, v in _samples(got[3])), default=-1.0)
    res.hard_onset = max(0.0, (hard_at - onset) / 60) if hard_at >= 0 else 0.0
    res.fired.sort(key=lambda f: f.minute)
    if not res.healthy:
        res.cause_minute, res.cause_alerts = cause_detection(sc, res)
    return res


def _samples(text: str) -> list[tuple[dict[str, str], str]]:
    out = []
    for labels, value in re.findall(r"(\{[^}]*\}) ([-+.\dE]+|NaN)", text):
        out.append((dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)), value))
    return out


def cause_detection(sc: scenario.Scenario, res: Result) -> tuple[float | None, tuple[str, ...]]:
    """The first minute an alert of an expected cause fires on an expected entity, and which alerts."""
    models = {p.name: m.model for m, p in scenario.iter_models(sc)}
    hits = []
    for cause, entities in res.causes.items():
        alerts = set(BY_ID[cause].alerts) if cause in BY_ID else set()
        pods = {e.split("/")[0] for e in entities}
        gpus = {tuple(e.split("/")) for e in entities if "/" in e}
        for f in res.fired:
            if f.alert not in alerts or f.minute < 0:
                continue
            pod = f.labels.get("pod")
            if pod is None:
                right = f.labels.get("model_name") in {models.get(p) for p in pods}
            elif gpus and "gpu" in f.labels:
                right = (pod, f.labels["gpu"]) in gpus
            else:
                right = pod in pods
            if right:
                hits.append(f)
    if not hits:
        return None, ()
    first = min(f.minute for f in hits)
    return first, tuple(sorted({f.alert for f in hits if f.minute <= first + CAUSE_WITHIN}))


def _replay(args: tuple[Case, str, set[str], str]) -> Result:
    case, rule_dir, les, tmp = args
    work = Path(tmp) / case.name
    work.mkdir()
    return run(case, Path(rule_dir), les, work)


def rule_dir_of(rules: str | None, work: Path) -> Path:
    """The rule files to replay, cut to the alerts and the records they read (directly or through other
    records): quantiles and dashboard records change no alert, and promtool's cost grows with the rules."""
    texts = ({p.name: p.read_text() for p in Path(rules).glob("*.yaml")} if rules else
             {Path(rel).name: text for rel, text in render(load_config(None)).items()
              if rel.startswith("prometheus/rules/")})
    docs = {name: yaml.safe_load(text) or {} for name, text in texts.items()}
    rules_of = [r for d in docs.values() for g in d.get("groups", []) for r in g.get("rules", [])]
    names = lambda expr: set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))  # noqa: E731 (a superset is fine)
    wanted = set().union(*(names(r["expr"]) for r in rules_of if "alert" in r))
    grew = True
    while grew:
        more = set().union(*(names(r["expr"]) for r in rules_of if r.get("record") in wanted)) - wanted
        wanted |= more
        grew = bool(more)
    out = work / "rules"
    out.mkdir()
    for name, d in docs.items():
        for g in d.get("groups", []):
            g["rules"] = [r for r in g.get("rules", []) if "alert" in r or r.get("record") in wanted]
        d["groups"] = [g for g in d.get("groups", []) if g["rules"]]
        if d["groups"]:
            (out / name).write_text(yaml.dump(d, Dumper=DUMPER, sort_keys=False, width=10_000))
    return out


# ---- tables ----------------------------------------------------------------------------------

def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def listing(results: list[Result]) -> None:
    print(f"{'incident':34} {'kind':11} {'worst':>6} {'hard':>5} {'alert':>6} {'page':>6} {'cause':>6}  "
          "cause alerts / alerts that fired")
    for r in results:
        if r.healthy:
            names = sorted({f"{f.alert}:{f.severity}" for f in r.fired}) or ["none"]
            print(f"{r.name:34} {r.kind:11} {'':>6} {'':>5} {fmt(r.first()):>6} {fmt(r.first('critical')):>6} {'':>6}  "
                  f"{', '.join(names)}")
            continue
        first_alert = next((f.alert for f in r.fired if f.minute >= 0), "")
        early = f" early: {','.join(sorted({f.alert for f in r.early}))}" if r.early else ""
        hard = fmt(r.hard_onset) if r.hard else ""
        print(f"{r.name:34} {r.kind:11} {r.worst_share:6.0%} {hard:>5} {fmt(r.first()):>6} {fmt(r.first('critical')):>6} "
              f"{fmt(r.cause_minute):>6}  {', '.join(r.cause_alerts) or '(none; ' + ','.join(r.causes) + ')'}"
              f"  [first: {first_alert}]{early}")


def by_cause(results: list[Result]) -> None:
    """Per expected cause: incidents, cause alert within 5 min, median minute; hard outages paged."""
    rows: dict[str, list[Result]] = {}
    for r in results:
        for cause in r.causes or {"(healthy)": []}:
            rows.setdefault(cause, []).append(r)
    print(f"{'cause':24} {'n':>3} {'cause<=5m':>9} {'median':>7} {'hard paged<=3m':>15}")
    for cause, rs in sorted(rows.items()):
        if cause == "(healthy)":
            pages = sum(f.severity == "critical" for r in rs for f in r.fired)
            tickets = sum(f.severity == "warning" for r in rs for f in r.fired)
            print(f"{cause:24} {len(rs):>3}  pages {pages}, tickets {tickets}")
            continue
        ms = [r.cause_minute for r in rs if r.cause_minute is not None]
        ok = sum(m <= CAUSE_WITHIN for m in ms)
        hard = [r for r in rs if r.hard]
        paged = sum(r.paged_in_time for r in hard)
        print(f"{cause:24} {len(rs):>3} {ok:>5}/{len(rs):<3} {fmt(statistics.median(ms)) if ms else '-':>7} "
              f"{paged:>9}/{len(hard):<5}")


def summary(results: list[Result]) -> dict[str, str]:
    faults = [r for r in results if not r.healthy]
    hard = [r for r in faults if r.hard]
    paged = [r for r in hard if r.paged_in_time]
    caught = [r for r in faults if r.cause_minute is not None and r.cause_minute <= CAUSE_WITHIN]
    healthy = [r for r in results if r.healthy]
    pages = sum(f.severity == "critical" for r in healthy for f in r.fired)
    tickets = sum(f.severity == "warning" for r in healthy for f in r.fired)
    early = sum(bool(r.early) for r in faults)
    pct = lambda a, b: f"{a}/{b} ({a / b:.0%})" if b else "0/0"  # noqa: E731
    return {"hard outages paged within 3 min": pct(len(paged), len(hard)),
            "cause alert on the right entity within 5 min": pct(len(caught), len(faults)),
            "healthy incidents: pages, tickets": f"{pages}, {tickets} (over {len(healthy)} incidents)",
            "fault incidents with a page/ticket before onset": f"{early}/{len(faults)}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", help="a directory of rule files (default: generate from this checkout)")
    ap.add_argument("--label", default="ours")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="first: tuning set; others: held out")
    ap.add_argument("--variants", type=int, default=4, help="variants per cause id (bench/incidents.py)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scenarios", help="comma-separated sandbox scenarios instead of the simulated incidents")
    ap.add_argument("--list", action="store_true", help="print every incident, not only the tables")
    ap.add_argument("--causes", help="comma-separated cause ids (or `healthy`): only the incidents expecting one")
    args = ap.parse_args()
    cfg = load_config(None)
    les = {"+Inf"} | {le for kind in LATENCY_SIGNAL for v in variants(cfg, kind) if v.objective.enabled
                      for le in le_pattern(v.objective.threshold_seconds).replace("\\", "").split("|")}
    sets = ([("scenarios", sandbox(args.scenarios.split(",")))] if args.scenarios else
            [(f"{'tune' if i == 0 else 'held-out'} seed {seed}", only(simulated(seed, args.variants), args.causes))
             for i, seed in enumerate(args.seeds)])
    print(f"rules: {args.label}; minutes after onset; page = critical, ticket = warning")
    totals = []
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.workers) as pool:
        rule_dir = rule_dir_of(args.rules, Path(tmp))
        for title, cases in sets:
            sub = Path(tmp) / title.replace(" ", "-")
            sub.mkdir()
            results = list(pool.map(_replay, [(c, str(rule_dir), les, str(sub)) for c in cases]))
            print(f"\n== {title}: {len(results)} incidents")
            if args.list:
                listing(results)
                print()
            by_cause(results)
            totals.append((title, summary(results)))
    print()
    keys = list(totals[0][1])
    print(f"{'target':50} " + " ".join(f"{t:>22}" for t, _ in totals))
    for k in keys:
        print(f"{k:50} " + " ".join(f"{s[k]:>22}" for _, s in totals))


if __name__ == "__main__":
    main()
