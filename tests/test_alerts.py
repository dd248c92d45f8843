"""Alerting rules under `promtool test rules`, from the alerts-* scenarios, replayed on vLLM and SGLang.

Each scenario is synthesized into raw series (engine, Kubernetes `up`, dcgm-exporter), run through every
generated rule group (engine records -> pod -> model -> GPU -> SLI records -> alerts), and checked at
fixed evaluation times: `Fires` expects the exact alerts (labels and rendered annotations), `Quiet` expects
none of that name. `test_every_alert_has_a_firing_and_a_quiet_case` fails when a generated alert (per
`slo` and `burn_tier` for the burn-rate alert) lacks either.

`python tests/test_alerts.py --detection` prints the detection time (fault onset -> firing) per burn tier.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml

from inferwatch.sandbox import scenario
from inferwatch.core.labels import BURN_TIERS as TIERS
from inferwatch.core.config import Config, ConfigError, duration_seconds, load_config, parse_config
from inferwatch.generate.writer import CHECKS, rule_groups
from inferwatch.core.promql import Agg, BinOp, selectors, walk
from inferwatch.core.rules import AlertingRule, RecordingRule, RuleGroup, rule_file

ENGINES = {"vllm": "0.33", "sglang": "0.5.23"}
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: test files hold ~100k samples
DEFAULT = load_config(None)
SLO_BURN = "alerts-slo-burn"
ONSET = "30m"


# ---- cases ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fires:
    """At `at`, `alert` fires for exactly these targets (pods, or models for model-tier alerts)."""
    alert: str
    at: str
    targets: tuple[str, ...]
    value: float | None = 0.0  # what $value renders as in the description; None: what the simulation gives
    labels: dict[str, str] = field(default_factory=dict)  # picks rules by static labels (slo, burn_tier)


@dataclass(frozen=True)
class Quiet:
    """At each time in `at`, no `alert` fires (every alert name when `alert` is "*")."""
    alert: str
    at: tuple[str, ...]


CHAT, RAG, CODE = "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-14B-Instruct", "Qwen/Qwen2.5-Coder-7B-Instruct"

CASES: dict[str, list[Fires | Quiet]] = {
    SLO_BURN: [
        Quiet("LLMModelErrorBudgetBurn", ("29m",)),
        # 3h35m: the fault is 3h05m old, past the longest `for` (3h), so every tier of each SLO fires.
        *[Fires("LLMModelErrorBudgetBurn", "3h35m", (model,), labels={"slo": slo, "burn_tier": tier})
          for slo, model in (("availability", CHAT), ("ttft", RAG), ("itl", CODE)) for tier in TIERS],
    ],
    "alerts-pod-causes": [
        Quiet("*", ("29m",)),
        # the simulator decides these values (KV use, preemptions, queue, hit ratio): read from the series
        Fires("LLMPodKVCacheSaturated", "45m", ("chat-1",), None),
        Fires("LLMPodPreemptionStorm", "45m", ("chat-1",), None),
        Fires("LLMPodQueueBacklog", "45m", ("chat-1",), None),
        Fires("LLMPodLoadImbalance", "45m", ("chat-1",), None),
        Fires("LLMPodPrefixCacheHitRatioCollapse", "50m", ("chat-2",), None),
        Fires("LLMPodRestarted", "45m", ("chat-0",), 1),
        Quiet("LLMPodRestarted", ("39m", "1h")),  # `changes` over 15m: the restart has aged out
        Fires("LLMPodTargetDown", "1h", ("chat-3",)),
        Quiet("LLMPodTargetDown", ("54m",)),  # for: 5m
        Quiet("LLMModelServingAbsent", ("1h", "1h29m")),  # one pod of four is down: still served
        # No Quiet for LLMModelErrorBudgetBurn here: chat-1's queue really burns the TTFT budget (a restart's
        # counter reset being no error is checked in alerts-near-miss).
    ],
    "alerts-gpu-faults": [
        Quiet("*", ("29m",)),
        Fires("LLMGPUXidError", "31m", ("gpu-0",), 79),
        Fires("LLMGPUEccOrRowRemapFailure", "31m", ("gpu-1",)),
        Fires("LLMGPUThrottled", "45m", ("gpu-2",)),
        Fires("LLMGPUFramebufferNearlyFull", "45m", ("gpu-3",), 0.99),
        Fires("LLMGPUComputeSaturated", "50m", ("gpu-4",), None),
        Fires("LLMGPUIdleWhileQueued", "45m", ("gpu-5",), None),
        Quiet("LLMGPUComputeSaturated", ("31m",)),  # for: 2m
    ],
    "alerts-serving-absent": [
        Quiet("*", ("29m",)),
        Fires("LLMModelServingAbsent", "45m", (CHAT,)),  # not batch: scaled to zero, targets gone too
        Quiet("LLMModelServingAbsent", ("38m",)),  # 5m lookback + for: 5m
        Fires("LLMPodTargetDown", "45m", ("chat-0", "chat-1")),
    ],
    "alerts-near-miss": [Quiet("*", ("35m", "42m", "45m", "55m", "1h10m", "1h29m"))],
}
NEAR_MISS = "alerts-near-miss"


def gpu_of(pod: str, value: str) -> str:
    """A per-GPU expression (by UUID, GPU_I_ID) for the GPU of `pod`, as the GPU alerts join it."""
    return f'({value}) * on (UUID, GPU_I_ID) group_left () llm_gpu:info{{pod="{pod}"}}'


def max_gpu(metric: str) -> str:
    return f"max by (UUID, GPU_I_ID) ({metric})"


# The simulator decides how close each near-miss comes: these hold over the run (a count of 1 each), so a
# quiet alert is quiet because the situation stayed short of its threshold, not because nothing happened.
NEAR = {
    "queue: more than 5 requests wait (queue time stays short)":
        'max_over_time(llm_pod:requests_waiting:sum{pod="queue-0"}[1h29m]) > 5',
    "kv-full: the KV cache runs over 70% full":
        'max_over_time(llm_pod:kv_cache_usage:max{pod="kv-full-0"}[1h29m]) > 0.7',
    "kv-full: a preemption now and then, a tenth of the storm rate at most":
        'max_over_time(llm_pod:preemptions:rate5m{pod="kv-full-0"}[1h29m]) < 0.05',
    "near-clock: the clock is capped below 80% of its maximum":
        gpu_of("near-clock", "min_over_time(llm_gpu_id:sm_clock_mhz:max[3m]) < max_over_time(llm_gpu_id:sm_clock_mhz:max[1h]) * 0.8"),
    "near-clock: the GPU runs over 80 degrees":
        gpu_of("near-clock", "max by (UUID, GPU_I_ID) (max_over_time(DCGM_FI_DEV_GPU_TEMP[30m])) > 80"),
    "near-fb: the framebuffer is over 95% used":
        gpu_of("near-fb", f"{max_gpu('DCGM_FI_DEV_FB_USED')} / ({max_gpu('DCGM_FI_DEV_FB_USED')} + "
                          f"{max_gpu('DCGM_FI_DEV_FB_FREE')}) > 0.95"),
    "near-busy: the engine is over 80% active":
        gpu_of("near-busy", f"{max_gpu('DCGM_FI_PROF_GR_ENGINE_ACTIVE')} > 0.8"),
    "near-host: the GPU idles under 40% active":
        gpu_of("near-host", f"{max_gpu('DCGM_FI_PROF_GR_ENGINE_ACTIVE')} < 0.4"),
}


def near_checks() -> list[dict]:
    return [{"expr": f"count({expr})", "eval_time": "1h29m", "exp_samples": [{"labels": "{}", "value": 1}]}
            for expr in NEAR.values()]


# ---- expected alerts ----------------------------------------------------------------------------

def load_as(name: str, engine: str) -> scenario.Scenario:
    """A scenario file replayed on another engine: same traffic and faults, that engine's series."""
    data = yaml.safe_load((scenario.FIXTURES / f"{name}.yaml").read_text())
    data.update(engine=engine, version=ENGINES[engine])
    return scenario.from_dict(data)


@functools.cache
def replayed(name: str, engine: str) -> list[scenario.Series]:
    """The series of `load_as(name, engine)`, simulated once per process (read-only: the SLO-burn
    replay and the per-model overrides test share them)."""
    return scenario.synthesize(load_as(name, engine))


def alert_rules(cfg: Config) -> list[AlertingRule]:
    return [r for g in rule_groups(cfg) for r in g.rules if isinstance(r, AlertingRule)]


def identity(sc: scenario.Scenario, series: list[scenario.Series], rule: AlertingRule, target: str) -> dict:
    """The labels an alert of `rule` must carry for a pod (pod/gpu tier) or a model (model tier)."""
    tier = rule.labels["tier"]
    for m, pod in scenario.iter_models(sc):
        if target in (m.model, pod.name):
            labels = {"backend": sc.engine, **m.labels, "model_name": m.model}  # a -pd backend is labelled
            if tier == "model":
                return labels
            labels["pod"] = pod.name
            if pod.role:
                labels["role"] = pod.role
            if tier == "gpu":
                gpu = next(s for s, _ in series if s["__name__"] == "DCGM_FI_DEV_GPU_TEMP"
                           and s.get("exported_pod") == pod.name)
                labels.update(gpu=gpu["gpu"], UUID=gpu["UUID"], modelName=gpu["modelName"],
                              hostname=gpu.get("Hostname") or gpu["hostname"])
            return labels
    raise KeyError(f"{target} is neither a model nor a pod of {sc.name}")


def render_template(text: str, labels: dict[str, str], value: float) -> str:
    """The subset of Go templating the generated annotations use."""
    def one(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr.removeprefix("$labels."), "")
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        fmt = re.fullmatch(r'printf "(%\.\d+f)" \$value', expr)
        if fmt:
            return fmt.group(1) % value
        raise ValueError(f"template not understood by the test: {expr}")
    return re.sub(r"{{(.*?)}}", one, text)


def expected(case: Fires, sc, series, rules: list[AlertingRule]) -> list[dict]:
    chosen = [r for r in rules if r.alert == case.alert and case.labels.items() <= r.labels.items()]
    assert chosen, f"no generated rule for {case}"
    out = []
    for rule in chosen:
        for target in case.targets:
            labels = {k: str(v) for k, v in {**identity(sc, series, rule, target), **rule.labels}.items()}
            out.append({"exp_labels": labels,
                        "exp_annotations": {k: render_template(v, labels, case.value)
                                            for k, v in rule.annotations.items()}})
    return out


def alert_tests(cases: list[Fires | Quiet], sc, series, rules: list[AlertingRule]) -> list[dict]:
    """One promtool alert_rule_test per (alert name, time): every alert expected then, or none."""
    names = sorted({r.alert for r in rules})
    slots: dict[tuple[str, str], list[dict]] = {}
    for case in cases:
        if isinstance(case, Fires):
            slots.setdefault((case.alert, case.at), []).extend(expected(case, sc, series, rules))
        else:
            for at in case.at:
                for name in (names if case.alert == "*" else [case.alert]):
                    assert not slots.get((name, at)), f"{name} at {at} is both expected and quiet"
                    slots[(name, at)] = []
    return [{"eval_time": at, "alertname": name, "exp_alerts": exp}
            for (name, at), exp in sorted(slots.items(), key=lambda kv: (duration_seconds(kv[0][1]), kv[0][0]))]


# ---- running promtool -------------------------------------------------------------------------

TOKEN_HISTOGRAMS = re.compile(r"^(vllm:request_(prompt|generation)_tokens|sglang:(prompt|generation)_tokens_histogram)_")


def alert_inputs(cfg: Config, series: list[scenario.Series]) -> list[scenario.Series]:
    """The raw series the alerts read. Alerts use one bucket per latency SLO (its threshold `le`) and
    the histograms' sum and count, never quantiles or token lengths; dropping the other buckets keeps
    every record an alert reads identical and makes promtool several times faster."""
    from inferwatch.generate.slo import LATENCY_SIGNAL, le_pattern, variants
    les = {"+Inf"} | {le for kind in LATENCY_SIGNAL for v in variants(cfg, kind) if v.objective.enabled
                      for le in le_pattern(v.objective.threshold_seconds).replace("\\", "").split("|")}
    return [(labels, samples) for labels, samples in series
            if not TOKEN_HISTOGRAMS.match(labels["__name__"])
            and not (labels["__name__"].endswith("_bucket") and labels.get("le") not in les)]


def alert_closure(groups: list[RuleGroup]) -> list[RuleGroup]:
    """Every alert plus the recording rules it reads, directly or through other records. promtool's
    cost per step grows with the rule count; quantiles and dashboard-only records do not change an alert."""
    wanted = {sel.metric for g in groups for r in g.rules if isinstance(r, AlertingRule) for sel in selectors(r.expr)}
    records = [r for g in groups for r in g.rules if isinstance(r, RecordingRule)]
    grew = True
    while grew:
        more = {sel.metric for r in records if r.record in wanted for sel in selectors(r.expr)} - wanted
        wanted |= more
        grew = bool(more)
    kept = [replace(g, rules=tuple(r for g_r in [g.rules] for r in g_r
                                   if isinstance(r, AlertingRule) or r.record in wanted)) for g in groups]
    return [g for g in kept if g.rules]


def write_rules(cfg: Config, folder: Path) -> tuple[list[str], list[str]]:
    """Rule files (rendered as `inferwatch generate` renders them) and the groups' evaluation order."""
    paths, order = [], []
    for g in alert_closure(rule_groups(cfg)):
        path = folder / f"{g.file}.rules.yaml"
        path.write_text(rule_file([g]))
        paths.append(str(path))
        order.append(g.name)
    return paths, order


def promtool(folder: Path, rules: tuple[list[str], list[str]], cfg: Config, sc: scenario.Scenario, series,
             alerts: list[dict], exprs: list[dict] = ()) -> subprocess.CompletedProcess:
    paths, order = rules
    step = f"{int(sc.step)}s"
    test = {"name": sc.name, "interval": step,
            "input_series": scenario.promtool_input_series(alert_inputs(cfg, series), sc.start, sc.step)}
    if alerts:
        test["alert_rule_test"] = alerts
    if exprs:
        test["promql_expr_test"] = list(exprs)
    doc = {"rule_files": paths, "evaluation_interval": step, "group_eval_order": order, "tests": [test]}
    (folder / "alerts.test.yaml").write_text(yaml.dump(doc, Dumper=DUMPER, sort_keys=False, width=10_000))
    return subprocess.run(["promtool", "test", "rules", "alerts.test.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=300)


# Detection: the first evaluation at which a burn tier fired, minus the fault onset (promtool time
# starts at 0). Bounds: no tier fires before its `for`, and each fires within `for` + 10 minutes.
def first_firing(burn_tier: str) -> str:
    alerts = f'ALERTS{{alertname="LLMModelErrorBudgetBurn", alertstate="firing", burn_tier="{burn_tier}"}}'
    return f"min by (slo) (min_over_time(timestamp({alerts})[4h:1m])) - {duration_seconds(ONSET):g}"


def detection_checks(cfg: Config) -> list[dict]:
    checks = []
    for w in cfg.slo.windows:
        first, lo = first_firing(w.burn_tier), duration_seconds(w.for_duration)
        checks.append({"expr": f"({first} >= bool {lo:g}) * ({first} <= bool {lo + 600:g})", "eval_time": "3h39m",
                       "exp_samples": [{"labels": f'{{slo="{slo}"}}', "value": 1}
                                       for slo in ("availability", "itl", "ttft")]})
    return checks


# ---- the promtool tests ----------------------------------------------------------------------------

RUNS = [(name, engine) for name in sorted(CASES) for engine in ENGINES]


def run_case(folder: Path, rules, name: str, engine: str, cfg: Config = DEFAULT,
             exprs: list[dict] | None = None) -> subprocess.CompletedProcess:
    sc, series = load_as(name, engine), replayed(name, engine)
    if exprs is None:
        exprs = detection_checks(cfg) if name == SLO_BURN else near_checks() if name == NEAR_MISS else []
    cases = measured(CASES[name], sc, series, cfg)
    return promtool(folder, rules, cfg, sc, series, alert_tests(cases, sc, series, alert_rules(cfg)), exprs)


def measured(cases: list[Fires | Quiet], sc: scenario.Scenario, series, cfg: Config) -> list[Fires | Quiet]:
    """Cases whose value the simulation decides get it from the alert's own expression (recording rules
    inlined), evaluated by a real Prometheus on the same samples at the case's time."""
    todo = [c for c in cases if isinstance(c, Fires) and c.value is None]
    if not todo:
        return cases
    import io
    import requests
    from inferwatch.core.promql import check, inline
    from inferwatch.core.rules import record_index
    from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
    buf = io.StringIO()  # the samples as promtool reads them (promtool_input_series rounds to 6 decimals)
    write_openmetrics([(lb, [(t, round(v, 6)) for t, v in s]) for lb, s in alert_inputs(cfg, series)], buf)
    index = record_index(rule_groups(cfg))
    values: dict[tuple[int, str], float] = {}
    with LocalPrometheus(buf.getvalue()) as prom:
        for case in todo:
            rule = next(r for r in alert_rules(cfg) if r.alert == case.alert and case.labels.items() <= r.labels.items())
            at = sc.start + duration_seconds(case.at)
            body = requests.get(prom.url + "/api/v1/query", timeout=60,
                                params={"query": check(inline(rule.expr, index, f"{int(sc.step)}s")), "time": at}).json()
            for s in body["data"]["result"]:
                target = next((s["metric"][k] for k in ("pod", "model_name")
                               if s["metric"].get(k) in case.targets), None)  # pod and GPU tiers, then model
                if target:
                    values[(id(case), target)] = float(s["value"][1])
    out = []
    for c in cases:
        if c in todo:
            got = [values[(id(c), t)] for t in c.targets if (id(c), t) in values]
            assert len(got) == len(c.targets), f"{c.alert} is not firing on {c.targets} at {c.at} in {sc.name}"
            out.append(replace(c, value=got[0]))
        else:
            out.append(c)
    return out


@pytest.fixture(scope="module")
def promtool_runs(tmp_path_factory):
    """Every scenario x engine, started together on two workers; each test waits for its own run."""
    rules = write_rules(DEFAULT, tmp_path_factory.mktemp("rules"))
    with ThreadPoolExecutor(2) as pool:
        yield {key: pool.submit(run_case, tmp_path_factory.mktemp(f"{key[0]}-{key[1]}"), rules, *key)
               for key in RUNS}


@pytest.mark.parametrize("name,engine", RUNS)
def test_alerts_fire_and_stay_quiet(promtool_runs, name, engine):
    res = promtool_runs[(name, engine)].result()
    assert res.returncode == 0, f"{name} on {engine}:\n{res.stdout[-6000:]}{res.stderr[-2000:]}"


def coverage_key(rule: AlertingRule) -> tuple[str, ...]:
    return (rule.alert,) + tuple(rule.labels[k] for k in ("slo", "burn_tier") if k in rule.labels)


ELSEWHERE = ("test_alerts_fast", "test_alerts_replicas", "test_alerts_hysteresis", "test_alerts_exogenous",
             "test_alerts_features")  # test modules with their own scenarios and CASES


def test_every_alert_has_a_firing_and_a_quiet_case():
    import importlib
    fired, quiet = set(), set()
    rules = alert_rules(DEFAULT)
    tables = [CASES] + [importlib.import_module(m).CASES for m in ELSEWHERE]
    for cases in (c for table in tables for c in table.values()):
        for case in cases:
            if isinstance(case, Fires):
                fired |= {coverage_key(r) for r in rules
                          if r.alert == case.alert and case.labels.items() <= r.labels.items()}
            else:
                quiet |= {r.alert for r in rules if case.alert in ("*", r.alert)}
    fired |= {(name,) for name in BODY_ALERTS}  # tested on real bodies below
    quiet |= set(BODY_ALERTS)
    keys = {coverage_key(r) for r in rules}
    assert not sorted(keys - fired), f"alerts without a firing case in CASES: {sorted(keys - fired)}"
    assert not sorted({k[0] for k in keys} - quiet), f"alerts without a quiet case: {sorted({k[0] for k in keys} - quiet)}"


# ---- per-model overrides ---------------------------------------------------------------------------

OVERRIDES = """
backends: [vllm]                           # 0.75s is a TTFT bucket boundary of vLLM, not of SGLang
slo:
  e2e_latency: {enabled: true, threshold_seconds: 60}
  models:
    - model: Qwen/Qwen2.5-14B-Instruct     # rag: a tight TTFT objective
      ttft: {threshold_seconds: 0.75, objective_percent: 99.5}
    - model: Qwen/Qwen2.5-7B-Instruct      # chat: a batch model with no availability SLO
      namespace: llm
      availability: {enabled: false}
"""


def test_per_model_overrides_replace_the_global_objective(tmp_path):
    cfg = parse_config(OVERRIDES, "inferwatch.yaml")
    rules = alert_rules(cfg)
    ttft = [r for r in rules if r.labels.get("slo") == "ttft"]
    assert len(ttft) == 2 * len(TIERS), "every tier for the global TTFT objective, every tier for rag's override"
    assert sum('model_name="Qwen/Qwen2.5-14B-Instruct"' in str(r.expr) for r in ttft) == 2 * len(TIERS)  # scoped, or excluded
    assert not any('model_name="Qwen/Qwen2.5-7B-Instruct"' in str(r.expr) and r.labels["slo"] == "availability"
                   and "unless" not in str(r.expr) for r in rules)
    assert {r.labels["slo"] for r in rules if r.alert == "LLMModelErrorBudgetBurn"} == \
        {"availability", "ttft", "itl", "e2e_latency"}
    cases = [Quiet("LLMModelErrorBudgetBurn", ("29m",)),
             # 12m after onset: page-outage and page-fast fire for rag (its own 0.75s / 99.5% objective) and code (global
             # ITL); chat fails every request but has no availability SLO.
             *[Fires("LLMModelErrorBudgetBurn", "42m", (model,), labels={"slo": slo, "burn_tier": tier})
               for tier in ("page-outage", "page-fast") for slo, model in (("ttft", RAG), ("itl", CODE))]]
    sc, series = load_as(SLO_BURN, "vllm"), replayed(SLO_BURN, "vllm")
    rag_rules = [r for r in rules if 'model_name="Qwen/Qwen2.5-14B-Instruct"' in str(r.expr)
                 and "unless" not in str(r.expr)]
    tests = alert_tests(cases[:1], sc, series, rules)
    exp = [e for c in cases[1:] for e in expected(c, sc, series, [r for r in rules
           if (c.labels["slo"] != "ttft" or r in rag_rules)])]
    tests.append({"eval_time": "42m", "alertname": "LLMModelErrorBudgetBurn", "exp_alerts": exp})
    res = promtool(tmp_path, write_rules(cfg, tmp_path), cfg, sc, series, tests)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert "exceeds 0.75s" in exp[0]["exp_annotations"]["description"]
    assert "its 99.5% objective" in exp[0]["exp_annotations"]["description"]


# ---- config checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("slo:\n  ttft: {threshold_seconds: 2.5}\n",
     r"slo.ttft.threshold_seconds: 2.5 is not a bucket boundary of every enabled backend's ttft histogram.*Common "
     r"boundaries: 0.1, 1, 10, 20, 40, 80\. Per backend: vllm: 0.001, .*; sglang: 0.1, 0.2, 0.4"),
    ("slo:\n  models:\n    - model: m\n      itl: {threshold_seconds: 0.3}\n",
     r"inferwatch.yaml:4: slo.models\[0\].itl.threshold_seconds: 0.3 is not a bucket boundary of every enabled backend's itl"),
    ("slo:\n  availability: {objective_percent: 100}\n", r"slo.availability.objective_percent: 100 must be between"),
    ("slo:\n  windows:\n    - {burn_tier: page-fast, long: 5m, short: 1h}\n", r"slo.windows\[0\]: need .*short"),
    ("slo:\n  windows:\n    - {burn_tier: fastest}\n", r"slo.windows\[0\].burn_tier: 'fastest' must be one of"),
    ("slo:\n  models:\n    - ttft: {threshold_seconds: 1}\n", r"slo.models\[0\].model: name the model"),
    ("slo:\n  error_reasons: {vllm: [oops]}\n", r"slo.error_reasons.vllm: unknown reason 'oops'"),
    ("alerts:\n  severity: {LLMPodQueueBacklg: info}\n", r"alerts.severity.LLMPodQueueBacklg: unknown alert"),
    ("alerts:\n  severity: {LLMPodQueueBacklog: page}\n", r"alerts.severity.LLMPodQueueBacklog: 'page'"),
    ("alerts:\n  kv_cache_usage: 95\n", r"alerts.kv_cache_usage: 95.0 must be a ratio"),
    ("slo:\n  ttft: {threshold_seconds: fast}\n", r"inferwatch.yaml:2: slo.ttft.threshold_seconds: expected a number"),
    ("recording: {model_histograms: [ttft_seconds, itl_seconds]}\nslo:\n  e2e_latency: {enabled: true}\n",
     r"slo.e2e_latency: its SLI reads e2e_latency_seconds over hours; add it to recording.model_histograms"),
])
def test_bad_alert_config_names_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "inferwatch.yaml", CHECKS)


def test_bad_threshold_exits_2_with_one_line_and_no_traceback(tmp_path):
    cfg = tmp_path / "inferwatch.yaml"
    cfg.write_text("slo:\n  ttft: {threshold_seconds: 2.5}\n")
    res = subprocess.run([sys.executable, "-m", "inferwatch.cli", "generate", "-c", str(cfg), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "inferwatch.yaml:2: slo.ttft.threshold_seconds: 2.5" in res.stderr and "sglang:" in res.stderr


def test_snap_policy_picks_the_largest_common_boundary_below_and_says_so():
    cfg = parse_config("slo:\n  threshold_policy: snap\n  ttft: {threshold_seconds: 2.5}\n"
                       "  itl: {threshold_seconds: 0.3}\n")
    burn = {r.labels["slo"]: r for r in alert_rules(cfg) if r.labels.get("burn_tier") == "page-fast"}
    assert 'le=~"1|1\\\\.0"' in check_sli(cfg, "ttft") and 'le=~"0\\\\.2"' in check_sli(cfg, "itl")
    assert "exceeds 1s (configured 2.5s, snapped to a bucket boundary)" in burn["ttft"].annotations["description"]
    assert "exceeds 0.2s (configured 0.3s" in burn["itl"].annotations["description"]


def check_sli(cfg: Config, kind: str) -> str:
    from inferwatch.generate.slo import sli_group
    return "\n".join(str(r.expr) for r in sli_group(cfg).rules if f"slo_{kind}_slow:ratio_rate5m" in r.record)


def test_latency_sli_matches_le_as_prometheus_2_and_3_write_it():
    text = check_sli(DEFAULT, "ttft")
    assert 'le=~"1|1\\\\.0"' in text, text  # the regex 1|1\.0 inside a PromQL string


# ---- the label contract and runbooks -----------------------------------------------------------------

def test_every_alert_follows_the_label_contract():
    cfg = parse_config("labels: {cluster: k8s_cluster}\n")
    for rule in alert_rules(cfg):
        lb = rule.labels
        assert re.fullmatch(r"LLM([A-Z][A-Za-z0-9]*)+", rule.alert), rule.alert
        assert lb["source"] == "inferwatch" and lb["severity"] in ("critical", "warning", "info"), rule.alert
        assert lb["tier"] in ("model", "pod", "gpu"), rule.alert
        if "burn_tier" in lb:
            assert lb["severity"] == ("critical" if lb["burn_tier"].startswith("page") else "warning")
            assert {"slo", "long", "short"} <= lb.keys()
        elif lb["tier"] != "model":
            assert lb["severity"] != "critical", f"{rule.alert}: cause alerts never page by default"
        assert set(rule.annotations) == {"summary", "description", "runbook_url"}
        assert re.fullmatch(r"[A-Z][^{}]*\.", rule.annotations["summary"]), rule.alert
        assert "{{ $labels.k8s_cluster }}" in rule.annotations["description"], rule.alert
        groupings = []
        walk(rule.expr, lambda e: groupings.append(e.by) if isinstance(e, Agg) and e.by is not None else
             groupings.append(e.on) if isinstance(e, BinOp) and e.on is not None else None)
        assert all("k8s_cluster" in g for g in groupings), f"{rule.alert}: cluster dropped in {groupings}"


def test_runbook_urls_point_at_generated_pages():
    files = render_files(DEFAULT)
    for rule in alert_rules(DEFAULT):
        page = rule.annotations["runbook_url"].removeprefix(DEFAULT.output.runbook_base_url + "/")
        assert f"runbooks/{page}" in files, rule.annotations["runbook_url"]
        body = files[f"runbooks/{page}"]
        assert body.startswith(f"# {rule.alert}\n") and "## Remediation" in body and "```promql" in body
    matrix = files["runbooks/README.md"]
    assert "| [LLMPodRestarted](LLMPodRestarted.md) | pod | warning | yes; needs kube-state-metrics |" in matrix


def test_support_matrix_follows_the_catalogs():
    from inferwatch.generate.alerts import BY_NAME
    from inferwatch.core.catalog import load_catalog
    from inferwatch.generate.runbooks import support
    sglang, vllm = load_catalog("sglang"), load_catalog("vllm")
    assert support(sglang, BY_NAME["LLMPodPreemptionStorm"]) == "yes (>= 0.4.10)"
    assert support(vllm, BY_NAME["LLMPodPreemptionStorm"]) == "yes"
    assert support(vllm, BY_NAME["LLMGPUXidError"]) == "yes"


def render_files(cfg: Config) -> dict[str, str]:
    from inferwatch.generate.writer import render
    return render(cfg)


# ---- detection time, for the docs ------------------------------------------------------------------

def detection_minutes(engine: str, folder: Path) -> dict[tuple[str, str], float]:
    """(slo, burn_tier) -> minutes from fault onset to firing, read from promtool's own evaluation."""
    exprs = [{"expr": first_firing(w.burn_tier), "eval_time": "3h39m", "exp_samples": []}
             for w in DEFAULT.slo.windows]
    res = run_case(folder, write_rules(DEFAULT, folder), SLO_BURN, engine, exprs=exprs)
    out = {}
    for tier, got in zip([w.burn_tier for w in DEFAULT.slo.windows], re.findall(r"got: (.*)", res.stderr)):
        for slo, value in re.findall(r'\{slo="(\w+)"\} ([-+.\dE]+)', got):
            out[(slo, tier)] = float(value) / 60
    return out


if __name__ == "__main__" and sys.argv[1:] == ["--detection"]:
    import tempfile
    for eng in ENGINES:
        with tempfile.TemporaryDirectory() as tmp:
            for (slo_name, tier), minutes in sorted(detection_minutes(eng, Path(tmp)).items()):
                print(f"{eng:7} {slo_name:13} {tier:12} {minutes:6.0f} min")


# ---- alerts on real engine bodies (serving surfaces the scenarios do not synthesize) ------------------

FAILED_TRANSFERS = re.compile(r"(num_(bootstrap|transfer)_failed_reqs|nixl_num_failed_transfers)_total$")
HELD = re.compile(r"failed|expired|retries|aborted")  # other failure counters: no failures of that kind
KV_BODIES = {"sglang-0.5.23-lora-spec-pd": ("sglang-pd", 2), "vllm-0.33.0-lora-spec-nixl": ("vllm-pd", 1)}
BODY_ALERTS = ("LLMPodKVTransferFailing",)  # covered here: a firing and a near-miss case each


def body_series(stem: str, pod: str, failures: dict[int, float]) -> list[scenario.Series]:
    """A real prefill/decode body scraped every minute for 30 minutes: counters and histograms grow by
    10 a minute, gauges and other failure counters hold, and the failed-transfer counters grow by
    `failures[minute]` (cumulative)."""
    from test_expositions import EXPOSITIONS, parse_body
    backend = KV_BODIES[stem][0]
    target = {"namespace": "llm", "pod": pod, "workload_name": "chat", "backend": backend, "role": "prefill",
              "job": "inference", "instance": f"{pod}:8000"}
    out = []
    for labels, value, kind in parse_body((EXPOSITIONS / f"{stem}.prom").read_text()):
        name = labels["__name__"]
        grows = kind == "histogram" or (kind == "counter" and name.endswith("_total"))
        samples, total = [], value
        for minute in range(31):
            if FAILED_TRANSFERS.search(name):
                total += failures.get(minute, 0.0)
            elif grows and minute and not HELD.search(name):
                total += 10.0
            samples.append((minute * 60.0, total))
        out.append(({**labels, **target}, samples))
    return out


def kv_transfer_case(tmp_path: Path, failures: dict[int, float], tests: list[dict]) -> subprocess.CompletedProcess:
    series = [s for stem in KV_BODIES for s in body_series(stem, stem.split("-")[0] + "-prefill-0", failures)]
    paths, order = write_rules(DEFAULT, tmp_path)
    doc = {"rule_files": paths, "evaluation_interval": "1m", "group_eval_order": order,
           "tests": [{"name": "kv-transfer", "interval": "1m",
                      "input_series": scenario.promtool_input_series(series, 0.0, 60.0), "alert_rule_test": tests}]}
    (tmp_path / "kv.test.yaml").write_text(yaml.dump(doc, Dumper=DUMPER, sort_keys=False, width=10_000))
    return subprocess.run(["promtool", "test", "rules", "kv.test.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def kv_transfer_alert(stem: str, value: float) -> dict:
    backend, _ = KV_BODIES[stem]
    pod = stem.split("-")[0] + "-prefill-0"
    labels = {"namespace": "llm", "workload_name": "chat", "backend": backend, "model_name": CHAT, "role": "prefill",
              "pod": pod, "severity": "warning", "source": "inferwatch", "tier": "pod"}
    rule = next(r for r in alert_rules(DEFAULT) if r.alert == "LLMPodKVTransferFailing")
    description = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule.annotations["description"])
    description = description.replace('{{ printf "%.2f" $value }}', f"{value:.2f}")
    return {"exp_labels": labels, "exp_annotations": {**rule.annotations, "description": description}}


def test_kv_transfer_failures_fire_on_real_prefill_decode_bodies(tmp_path):
    """One failure a minute per failure counter from minute 5 (vLLM NIXL: failed transfers; SGLang:
    bootstrap and transfer failures): quiet before, firing after `for` with the summed rate."""
    failures = {m: 1.0 for m in range(5, 31)}
    tests = [{"eval_time": "4m", "alertname": "LLMPodKVTransferFailing", "exp_alerts": []},
             {"eval_time": "20m", "alertname": "LLMPodKVTransferFailing",
              "exp_alerts": [kv_transfer_alert(stem, n / 60) for stem, (_, n) in KV_BODIES.items()]}]
    res = kv_transfer_case(tmp_path, failures, tests)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]


def test_kv_transfer_single_failure_is_a_near_miss(tmp_path):
    """One failed transfer in half an hour (a peer restart) stays below the rate threshold."""
    tests = [{"eval_time": at, "alertname": "LLMPodKVTransferFailing", "exp_alerts": []}
             for at in ("11m", "15m", "20m", "30m")]
    res = kv_transfer_case(tmp_path, {10: 1.0}, tests)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
