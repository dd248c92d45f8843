"""The normalized series carry the right values: `promtool test rules` unit tests built from scenarios.

Each test renders the recording rules for a config, synthesizes a scenario from
`inferwatch/sandbox/scenarios/norm-*.yaml` into promtool `input_series`, and asserts normalized series whose
expected values are computed from the scenario's own parameters (request_rate 3 per pod, 2 pods ->
model rate 6; quantiles from the scenario's bucket layout and latency distribution), never typed in.

promtool 2.42 compares sample values exactly (0.1 + 0.2 is not 0.3), so every assertion wraps the
query in `round(..., ROUND)` and rounds the expectation with the same arithmetic PromQL uses.
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field

import pytest
import yaml

from inferwatch.sandbox import exposition, scenario
from inferwatch.core.config import Config, Labels, duration_seconds
from inferwatch.generate.writer import render, rule_groups
from inferwatch.core import schema
from inferwatch.core.promql import BinOp, Call, Expr, Matcher, Num, Selector, agg, inline, quote
from inferwatch.core.rules import record_index
from inferwatch.core.signals import GPU, MODEL, POD, record_names, signal

ROUND = 0.001
STEADY = 8 * 60      # seconds after the start: every 5m window is full and before any event
AFTER_RESTART = 12 * 60

# histogram signal -> (bucket layout in exposition.BUCKETS[engine], baseline key of its median)
HISTOGRAMS = {
    "ttft_seconds": ("ttft", "ttft"), "itl_seconds": ("itl", "itl"), "e2e_latency_seconds": ("e2e", "e2e"),
    "queue_time_seconds": ("queue", "queue_time"), "prompt_length_tokens": ("tokens", "prompt_tokens"),
    "generation_length_tokens": ("tokens", "generation_tokens"),
}


def rounded(value: float) -> float:
    """PromQL's round(v, ROUND), bit for bit (Go and Python share IEEE-754 doubles)."""
    inverse = 1.0 / ROUND
    return math.floor(value * inverse + 0.5) / inverse


def bucket_quantile(q: float, bounds: tuple[float, ...], cdf) -> float:
    """Prometheus 2.42's histogram_quantile on cumulative bucket fractions (linear within a bucket)."""
    buckets = [(b, cdf(b)) for b in bounds] + [(math.inf, 1.0)]
    rank = q * buckets[-1][1]
    b = next((i for i, (_, c) in enumerate(buckets[:-1]) if c >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


# ---- a scenario as the rules should see it under one config ----------------------------------

@dataclass
class Case:
    sc: scenario.Scenario
    cfg: Config = field(default_factory=Config)
    cluster: str = ""  # value of cfg.labels.cluster added to every series

    @property
    def model(self) -> scenario.ModelSpec:
        return self.sc.models[0]

    @property
    def base(self) -> dict[str, float]:
        return self.model.baseline

    @property
    def profile(self) -> exposition.Profile:
        return exposition.PROFILES[(self.sc.engine, self.sc.version)]

    @property
    def window(self) -> str:
        return self.cfg.recording.rate_window

    def pod_labels(self, pod: scenario.Pod) -> dict[str, str]:
        lb, m = self.cfg.labels, self.model
        out = {lb.namespace: m.labels["namespace"], lb.workload: m.labels["workload_name"],
               lb.backend: m.labels.get("backend", self.sc.engine), lb.model: m.model, lb.pod: pod.name}
        if lb.cluster:
            out[lb.cluster] = self.cluster
        return out

    def model_labels(self) -> dict[str, str]:
        labels = self.pod_labels(self.model.pods[0])
        del labels[self.cfg.labels.pod]
        return labels

    def series(self) -> list[scenario.Series]:
        """The synthesized series with the label keys a Prometheus under this config would hold."""
        rename = {"namespace": self.cfg.labels.namespace, "pod": self.cfg.labels.pod}
        out = []
        for labels, samples in scenario.synthesize(self.sc):
            labels = {rename.get(k, k): v for k, v in labels.items()}
            if self.cfg.labels.cluster:
                labels[self.cfg.labels.cluster] = self.cluster
            out.append((labels, samples))
        return out

    def histograms(self) -> list[str]:
        present = dict.fromkeys(HISTOGRAMS)
        if self.sc.engine == "sglang":
            if not self.profile.queue_hist:
                present.pop("queue_time_seconds")
            if not self.profile.token_hist:
                present.pop("prompt_length_tokens")
                present.pop("generation_length_tokens")
        return list(present)


# ---- promql_expr_test entries --------------------------------------------------------------------

def labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={quote(v)}" for k, v in sorted(labels.items())) + "}"


def expect(expr: Expr, samples: list[tuple[dict[str, str], float]], at: float = STEADY) -> dict:
    """A promql_expr_test: `expr` rounded equals `samples`; no samples means it must return nothing.
    `promtool_test` renders it, inlining the records computed at query time."""
    if not samples:
        return {"expr": expr, "eval_time": f"{int(at)}s", "exp_samples": []}
    return {"expr": Call("round", (expr, Num(ROUND))), "eval_time": f"{int(at)}s",
            "exp_samples": [{"labels": labels_text(lb), "value": rounded(v)} for lb, v in samples]}


def rec(sig: str, level: str, role: str, case: Case) -> Selector:
    return Selector(record_names(signal(sig), level, case.window)[role])


def only(sel: Selector, extra: dict[str, str] | None) -> Selector:
    """`sel` narrowed to the series carrying the `extra` labels (a reason, a quantile)."""
    return sel.with_matchers(*(Matcher(k, v) for k, v in sorted((extra or {}).items())))


def per_pod(case: Case, sel: Selector, value, extra: dict[str, str] | None = None, at: float = STEADY) -> dict:
    """`sel` has one series per pod, valued `value(pod)` (or the constant `value`)."""
    sel = only(sel, extra)
    samples = [({**case.pod_labels(p), **(extra or {})}, value(p) if callable(value) else value)
               for p in case.model.pods]
    return expect(sel, [s for s in samples if s[1] is not None], at)


def per_model(case: Case, sel: Selector, value: float | None, extra: dict[str, str] | None = None,
              at: float = STEADY) -> dict:
    sel = only(sel, extra)
    return expect(sel, [] if value is None else [({**case.model_labels(), **(extra or {})}, value)], at)


def quantile_label(q: float) -> dict[str, str]:
    return {"quantile": repr(float(q))}


# ---- what each normalized series must equal, from the scenario's parameters -------------------

def preemption_rate(case: Case, pod: scenario.Pod) -> float | None:
    """vLLM and SGLang >= 0.5.10 count preemptions; SGLang 0.5.3 only has a gauge of the last batch's
    retractions (round(rate per rank * 5) in the synthesizer), read as max over the window / window."""
    p = case.base["preemption_rate"]
    if case.sc.engine == "vllm" or case.profile.retract == "counter":
        return p
    if case.profile.retract == "gauge":
        ranks = max(1, pod.engines)
        return ranks * round(p / ranks * 5) / duration_seconds(case.window)
    return None


def finished_reasons(case: Case) -> dict[str, float]:
    """vLLM's finished_reason split of the request rate, as the engine reports it."""
    b = case.base
    ok = 1 - b["error_ratio"] - b["abort_ratio"]
    reasons = {"stop": ok * 0.8, "length": ok * 0.2, "abort": b["abort_ratio"]}
    if case.profile.error_reason:
        reasons["error"] = b["error_ratio"]
    return reasons


def error_reasons(case: Case) -> dict[str, float]:
    """request_errors by normalized reason, as shares of the request rate."""
    b = case.base
    if case.sc.engine == "vllm":
        out = {"abort": b["abort_ratio"], "http_5xx": b["error_ratio"]}
        if case.profile.error_reason:
            out["engine_error"] = b["error_ratio"]
        return out
    return {"abort": b["abort_ratio"] + b["error_ratio"]} if case.profile.aborted else {}


def traffic_checks(case: Case) -> list[dict]:
    b, pods = case.base, case.model.pods
    n, r = len(pods), b["request_rate"]
    out = [
        per_pod(case, rec("requests", POD, "rate", case), r),
        per_model(case, rec("requests", MODEL, "rate", case), n * r),
        per_pod(case, rec("prompt_tokens", POD, "rate", case), r * b["prompt_tokens"]),
        per_pod(case, rec("generation_tokens", POD, "rate", case), r * b["generation_tokens"]),
        per_model(case, rec("generation_tokens", MODEL, "rate", case), n * r * b["generation_tokens"]),
        per_pod(case, rec("requests_running", POD, "value", case), b["running"]),
        per_model(case, rec("requests_running", MODEL, "value", case), n * b["running"]),
        per_pod(case, rec("requests_waiting", POD, "value", case), b["waiting"]),
        per_pod(case, rec("kv_cache_usage", POD, "value", case), b["kv_usage"]),
        per_model(case, rec("kv_cache_usage", MODEL, "value", case), b["kv_usage"]),
        per_model(case, rec("kv_cache_usage", MODEL, "avg", case), b["kv_usage"]),
        per_pod(case, rec("preemptions", POD, "rate", case), lambda p: preemption_rate(case, p)),
        per_model(case, Selector(f"{MODEL}:pods:count"), n),
    ]
    for reason, share in error_reasons(case).items():
        out.append(per_pod(case, rec("request_errors", POD, "rate", case), r * share, {"reason": reason}))
        out.append(per_model(case, rec("request_errors", MODEL, "rate", case), n * r * share, {"reason": reason}))
    if case.sc.engine == "vllm":
        for reason, share in finished_reasons(case).items():
            out.append(per_pod(case, rec("requests_finished", POD, "rate", case), r * share,
                               {"finished_reason": reason}))
    return out


def distribution_checks(case: Case) -> list[dict]:
    """Prefix-cache hit ratio, histogram counts, means and quantiles at pod and model tier."""
    b, n, r = case.base, len(case.model.pods), case.base["request_rate"]
    hit = b["prefix_hit_ratio"]
    out = [per_pod(case, rec("prefix_cache_hit", POD, "ratio", case), hit),
           per_model(case, rec("prefix_cache_hit", MODEL, "ratio", case), hit)]
    # One inter-token observation per generated token after the first: counted once, whatever the names.
    itl_per_request = max(b["generation_tokens"] - 1, 1)
    out.append(per_pod(case, rec("itl_seconds", POD, "count", case), r * itl_per_request))
    out.append(per_model(case, rec("itl_seconds", MODEL, "count", case), n * r * itl_per_request))
    for sig in case.histograms():
        layout, median_key = HISTOGRAMS[sig]
        median = b[median_key]
        bounds = exposition.BUCKETS[case.sc.engine][layout]
        mean = median * math.exp(exposition.SIGMA ** 2 / 2)
        out.append(per_pod(case, rec(sig, POD, "mean", case), mean))
        out.append(per_model(case, rec(sig, MODEL, "mean", case), mean))
        for q in case.cfg.recording.quantiles:
            value = bucket_quantile(q, bounds, lambda x: exposition.lognormal_cdf(x, median))
            out.append(per_pod(case, rec(sig, POD, "quantile", case), value, quantile_label(q)))
            out.append(per_model(case, rec(sig, MODEL, "quantile", case), value, quantile_label(q)))
    return out


def gpu_checks(case: Case) -> list[dict]:
    """dcgm-exporter series reach the pod using the GPU, whichever labels name it."""
    lb, b = case.cfg.labels, case.base
    owner = tuple(k for k in (lb.cluster, lb.namespace, lb.workload, lb.backend, lb.pod) if k)
    where = tuple(k for k in (lb.cluster, lb.namespace, lb.pod) if k) + ("hostname",)

    def by_pod(value) -> list[tuple[dict[str, str], float]]:
        return [({k: case.pod_labels(p)[k] for k in owner}, value(p)) for p in case.model.pods]

    hosts = [({**{k: case.pod_labels(p)[k] for k in where[:-1]}, "hostname": p.node}, p.gpus)
             for p in case.model.pods]
    return [
        expect(agg("sum", rec("power_watts", GPU, "value", case), owner), by_pod(lambda p: b["power"] * p.gpus)),
        expect(agg("max", rec("engine_active", GPU, "value", case), owner), by_pod(lambda p: b["engine_active"])),
        expect(agg("max", rec("fb_used", GPU, "ratio", case), owner), by_pod(lambda p: b["fb_used_ratio"])),
        expect(agg("count", rec("temperature_celsius", GPU, "value", case), where), hosts),
    ]


def restart_checks(case: Case) -> list[dict]:
    """A window holding a restart loses only the interval in which the counters dropped to zero."""
    restarted = {p for e in case.model.events if e.restart for p in (e.pods or [q.name for q in case.model.pods])}
    if not restarted:
        return []
    lost = case.sc.step / duration_seconds(case.window)
    r = case.base["request_rate"]

    def rate(pod: scenario.Pod) -> float:
        return r * (1 - lost) if pod.name in restarted else r
    total = sum(rate(p) for p in case.model.pods)
    ttft = case.base["ttft"]
    median_ttft = bucket_quantile(0.5, exposition.BUCKETS[case.sc.engine]["ttft"],
                                  lambda x: exposition.lognormal_cdf(x, ttft))
    return [
        per_pod(case, rec("requests", POD, "rate", case), rate, at=AFTER_RESTART),
        per_model(case, rec("requests", MODEL, "rate", case), total, at=AFTER_RESTART),
        per_pod(case, rec("ttft_seconds", POD, "count", case), rate, at=AFTER_RESTART),
        per_pod(case, rec("ttft_seconds", POD, "quantile", case), median_ttft, quantile_label(0.5),
                at=AFTER_RESTART),
    ]


def all_checks(case: Case) -> list[dict]:
    return traffic_checks(case) + distribution_checks(case) + gpu_checks(case) + restart_checks(case)


# ---- running promtool ------------------------------------------------------------------------------

def promtool_test(tmp_path, case: Case, checks: list[dict]) -> None:
    """Write the rules of `case.cfg` and one promtool unit test for `checks`; fail with promtool's output."""
    files = render(case.cfg)
    rule_files = []
    for g in rule_groups(case.cfg):  # dependency order: engines, pod, model, gpu
        rel = f"prometheus/rules/{g.file}.rules.yaml"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(files[rel])
        rule_files.append(rel)
    later = schema.query_time(case.cfg)
    checks = [{**c, "expr": str(inline(c["expr"], later))} for c in checks]
    step = f"{int(case.sc.step)}s"
    doc = {"rule_files": rule_files, "evaluation_interval": step,
           "tests": [{"name": case.sc.name, "interval": step,
                      "input_series": scenario.promtool_input_series(case.series(), case.sc.start, case.sc.step),
                      "promql_expr_test": checks}]}
    test_file = tmp_path / "normalization.test.yaml"
    test_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    res = subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0, f"promtool test rules failed for {case.sc.name}:\n{res.stdout}{res.stderr}"


STEADY_SCENARIOS = [
    "norm-vllm-0.8",            # old names only; dcgm exported_pod/exported_namespace
    "norm-vllm-0.9",            # old and new names; dcgm honorLabels (namespace/pod), 2 GPUs per pod
    "norm-vllm-0.11",           # both ITL names too; dcgm lowercase hostname
    "norm-vllm-0.33",           # new names, finished_reason=error, HTTP 5xx, a restart
    "norm-vllm-multi-engine",   # engine="0"/"1" in one pod
    "norm-sglang-0.4.5",        # no rank labels, no backend label on the pods
    "norm-sglang-0.5.3",        # retraction gauge fallback
    "norm-sglang-0.5.23",       # retraction counter beside the gauge, is_streaming, cache_source
    "norm-sglang-dp-tp",        # 2 DP ranks x 2 TP ranks in one pod
]


@pytest.mark.parametrize("name", STEADY_SCENARIOS)
def test_normalized_series_match_scenario(tmp_path, name):
    case = Case(scenario.load(name))
    promtool_test(tmp_path, case, all_checks(case))


def test_ack_label_names_work_by_config_alone(tmp_path):
    """ACK relabels targets to pod_namespace / pod_name: only the config changes, every value stays right."""
    cfg = Config(labels=Labels(namespace="pod_namespace", pod="pod_name"))
    case = Case(scenario.load("norm-vllm-0.9"), cfg)
    assert not any("namespace" in labels or "pod" in labels for labels, _ in case.series())
    promtool_test(tmp_path, case, all_checks(case))


def test_cluster_label_is_kept_when_configured(tmp_path):
    case = Case(scenario.load("norm-sglang-0.5.23"), Config(labels=Labels(cluster="cluster")), cluster="east")
    promtool_test(tmp_path, case, all_checks(case))


def test_zero_traffic_gives_zeros_and_no_nan(tmp_path):
    """An idle model: rates are 0; ratios, means and quantiles are absent; no recorded series is NaN."""
    case = Case(scenario.load("norm-vllm-zero-traffic"))
    checks = [per_pod(case, rec("requests", POD, "rate", case), 0.0),
              per_model(case, rec("requests", MODEL, "rate", case), 0.0),
              per_pod(case, rec("prefix_cache_hit", POD, "ratio", case), None),
              per_model(case, rec("prefix_cache_hit", MODEL, "ratio", case), None)]
    for sig in case.histograms():
        for level in (POD, MODEL):
            checks.append(expect(rec(sig, level, "quantile", case), []))
            checks.append(expect(rec(sig, level, "mean", case), []))
    for name in sorted(record_index(rule_groups(case.cfg))):
        sel = Selector(name)
        checks.append(expect(BinOp("!=", sel, sel), []))  # only NaN differs from itself
    promtool_test(tmp_path, case, checks)
