"""Benchmark: how fast the shipped alerts detect incidents, under promtool's rule manager.

Every sandbox scenario with an incident (`expect.status`, `expect.top_cause` or `expect.causes`) is
synthesized, fed to `promtool test rules` with a rule directory (the generated `prometheus/rules/*.yaml`,
evaluated every step in dependency order, `for:` included), and read back from promtool's own `ALERTS`
series. Per incident, minutes after the fault onset (`expect.fault_onset`, else the first event):

  first alert / first page   any inferwatch alert / a critical one, on any entity
  cause alert                an alert of the expected cause's failure mode (core/failures.py) on an
                             expected pod or GPU (model-tier cause alerts: on the pods' model)
  hard outage                the model's worst 5m bad share (errors, TTFT, ITL) within 10 minutes of onset
                             is >= 50%: it must page within 3 minutes
  healthy                    every alert that fires over the whole run (must be none that pages or tickets)

    .venv/bin/python -m bench.bench_detection                     # rules generated from this checkout
    .venv/bin/python -m bench.bench_detection --rules OLD/prometheus/rules --label baseline
    .venv/bin/python -m bench.bench_detection --scenarios diag-healthy,demo-incident

The baseline column in docs comes from the rule files of the commit before issue 12
(`git archive bc1d67e rules/prometheus/rules | tar -x -C /tmp/base`).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from inferwatch.core.config import duration_seconds, load_config
from inferwatch.core.failures import BY_ID
from inferwatch.generate.slo import LATENCY_SIGNAL, le_pattern, variants
from inferwatch.generate.writer import render
from inferwatch.sandbox import scenario

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
GROUP_ORDER = ("inferwatch-vllm", "inferwatch-sglang", "inferwatch-vllm-pd", "inferwatch-sglang-pd",
               "inferwatch-pod", "inferwatch-model", "inferwatch-gpu", "inferwatch-slo",
               "inferwatch-alerts-model", "inferwatch-alerts-pod", "inferwatch-alerts-gpu")
SLIS = '{__name__=~"llm_model:slo_(errors|ttft_slow|itl_slow):ratio_rate5m"}'
PAGE_WITHIN, CAUSE_WITHIN, OUTAGE_SHARE = 3.0, 5.0, 0.5


@dataclass
class Fired:
    alert: str
    severity: str
    minute: float  # first firing, minutes after onset
    labels: dict[str, str]


@dataclass
class Result:
    name: str
    healthy: bool
    onset: float
    fired: list[Fired] = field(default_factory=list)
    worst_share: float = 0.0
    cause_minute: float | None = None
    cause_alerts: tuple[str, ...] = ()
    causes: dict[str, list[str]] = field(default_factory=dict)

    def first(self, severity: str | None = None) -> float | None:
        ms = [f.minute for f in self.fired if f.minute >= 0 and (severity is None or f.severity == severity)]
        return min(ms) if ms else None

    @property
    def hard(self) -> bool:
        return not self.healthy and self.worst_share >= OUTAGE_SHARE


def incidents(names: list[str] | None) -> list[scenario.Scenario]:
    out = []
    for name in names or scenario.available():
        sc = scenario.load(name)
        if sc.expect.get("status") == "healthy" or sc.expect.get("top_cause") or sc.expect.get("causes"):
            out.append(sc)
    return out


def onset_of(sc: scenario.Scenario) -> float:
    """Seconds from the start: `expect.fault_onset`, else the first event, else the diagnosis time."""
    if "fault_onset" in sc.expect:
        return duration_seconds(str(sc.expect["fault_onset"]))
    ats = [e.at for m in sc.models for e in m.events if e.at > 0]
    return min(ats) if ats else (sc.incident_at or 0.0)


def expected_causes(sc: scenario.Scenario) -> dict[str, list[str]]:
    """cause id -> the pods (or pod/gpu) it is on."""
    if sc.expect.get("causes"):
        return {c: list(p) for c, p in sc.expect["causes"].items()}
    return {sc.expect["top_cause"]: list(sc.expect.get("gpus") or sc.expect.get("pods") or [])}


def inputs(series: list[scenario.Series], les: set[str]) -> list[scenario.Series]:
    """Drop histogram buckets no alert reads (every `le` but the SLO thresholds): several times faster,
    and every series an alert reads stays identical."""
    return [(lb, s) for lb, s in series if not (lb["__name__"].endswith("_bucket") and lb.get("le") not in les)]


def run(sc: scenario.Scenario, rule_dir: Path, les: set[str], work: Path) -> Result:
    onset = onset_of(sc)
    res = Result(sc.name, sc.expect.get("status") == "healthy", onset, causes=({} if sc.expect.get("status") ==
                                                                                 "healthy" else expected_causes(sc)))
    step = f"{int(sc.step)}s"
    end = f"{int(sc.duration)}s"
    span = f"{int(sc.duration)}s:{step}"
    first = ("min by (alertname, severity, model_name, pod, gpu, UUID) "
             f"(min_over_time(timestamp(ALERTS{{alertstate=\"firing\", source=\"inferwatch\"}})[{span}]))"
             " or vector(-1)")  # never empty: promtool prints what it got only when it differs
    window = f"{int(min(600, sc.duration - onset))}s"
    worst = f"max(max_over_time((max({SLIS}))[{window}:{step}])) or vector(0)"
    files = sorted(str(p) for p in rule_dir.glob("*.yaml"))
    names = [g["name"] for f in files for g in (yaml.safe_load(Path(f).read_text()) or {}).get("groups", [])]
    order = sorted(names, key=lambda n: GROUP_ORDER.index(n) if n in GROUP_ORDER else len(GROUP_ORDER))
    at_worst = f"{int(min(onset + 600, sc.duration))}s"
    test = {"interval": step, "input_series": scenario.promtool_input_series(
                inputs(scenario.synthesize(sc), les), sc.start, sc.step),
            "promql_expr_test": [{"expr": first, "eval_time": end, "exp_samples": []},
                                 {"expr": worst, "eval_time": at_worst, "exp_samples": []}]}
    doc = {"rule_files": files, "evaluation_interval": step, "group_eval_order": order, "tests": [test]}
    (work / "detect.test.yaml").write_text(yaml.dump(doc, Dumper=DUMPER, sort_keys=False, width=10_000))
    out = subprocess.run(["promtool", "test", "rules", "detect.test.yaml"], cwd=work, capture_output=True,
                         text=True, timeout=900)
    got = re.findall(r"got: (.*)", out.stderr)
    if len(got) != 2:
        raise RuntimeError(f"{sc.name}: promtool said\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    for labels, value in _samples(got[0]):
        if "alertname" not in labels:
            continue
        res.fired.append(Fired(labels.pop("alertname"), labels.pop("severity", ""),
                               (float(value) - onset) / 60, labels))
    res.worst_share = max((float(v) for _, v in _samples(got[1])), default=0.0)
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


def rule_dir_of(args, work: Path) -> Path:
    if args.rules:
        return Path(args.rules)
    out = work / "rules"
    out.mkdir()
    for rel, text in render(load_config(None)).items():
        if rel.startswith("prometheus/rules/"):
            (out / Path(rel).name).write_text(text)
    return out


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", help="a directory of rule files (default: generate from this checkout)")
    ap.add_argument("--label", default="ours")
    ap.add_argument("--scenarios", help="comma-separated scenario names (default: every incident scenario)")
    args = ap.parse_args()
    cfg = load_config(None)
    les = {"+Inf"} | {le for kind in LATENCY_SIGNAL for v in variants(cfg, kind) if v.objective.enabled
                      for le in le_pattern(v.objective.threshold_seconds).replace("\\", "").split("|")}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rule_dir = rule_dir_of(args, Path(tmp))
        for sc in incidents(args.scenarios.split(",") if args.scenarios else None):
            work = Path(tmp) / sc.name
            work.mkdir()
            results.append(run(sc, rule_dir, les, work))
    print(f"rules: {args.label}; minutes after onset; page = critical, ticket = warning")
    print(f"{'incident':40} {'onset':>6} {'worst':>6} {'alert':>6} {'page':>6} {'cause':>6}  cause alerts / "
          "(healthy) alerts that fired")
    for r in results:
        if r.healthy:
            names = sorted({f"{f.alert}:{f.severity}" for f in r.fired}) or ["none"]
            print(f"{r.name:40} {r.onset / 60:6.0f} {'':>6} {fmt(r.first()):>6} {fmt(r.first('critical')):>6} "
                  f"{'':>6}  healthy: {', '.join(names)}")
            continue
        first_alert = next((f.alert for f in r.fired if f.minute >= 0), "")
        print(f"{r.name:40} {r.onset / 60:6.0f} {r.worst_share:6.0%} {fmt(r.first()):>6} "
              f"{fmt(r.first('critical')):>6} {fmt(r.cause_minute):>6}  "
              f"{', '.join(r.cause_alerts) or '(none; ' + ','.join(r.causes) + ')'}  [first: {first_alert}]")
    faults = [r for r in results if not r.healthy]
    hard = [r for r in faults if r.hard]
    paged = [r for r in hard if r.first("critical") is not None and r.first("critical") <= PAGE_WITHIN]
    caught = [r for r in faults if r.cause_minute is not None and r.cause_minute <= CAUSE_WITHIN]
    healthy = [r for r in results if r.healthy]
    pages = sum(f.severity == "critical" for r in healthy for f in r.fired)
    tickets = sum(f.severity == "warning" for r in healthy for f in r.fired)
    print(f"\nhard outages paged within {PAGE_WITHIN:g} min: {len(paged)}/{len(hard)}")
    print(f"cause alert on the right entity within {CAUSE_WITHIN:g} min: {len(caught)}/{len(faults)}"
          + (f" ({len(caught) / len(faults):.0%})" if faults else ""))
    print(f"healthy incidents: {len(healthy)}, pages {pages}, tickets {tickets}")


if __name__ == "__main__":
    main()
