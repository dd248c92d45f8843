"""Label values from users and alerts can never change the shape of a query.

Every value goes through `Matcher`/`Str`, which escape it; the rendered query must parse, and the parsed
matcher must hold exactly the input. A real Prometheus (promtool's engine) must select the series too.
"""
from __future__ import annotations

import json
import re
import subprocess

import promql_parser
import pytest
import yaml

from inferwatch.core.promql import (Agg, At, BinOp, Call, Matcher, Num, PromQLError, Selector, Str, agg, aggregate_once,
                                   check, inline, label_replace, matchers_from, narrow, number, rate, regex_escape,
                                   selectors, set_label, sift, transform)
from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics

HOSTILE = [
    'plain',
    'say "hi"',
    'back\\slash',
    'trailing backslash\\',
    '\\"',
    'new\nline',
    'carriage\rreturn',
    'tab\there',
    '"} or vector(1) or up{a="',
    '"}) or on() vector(1) #',
    "single 'quotes' and `backticks`",
    '${{ template }} {{ $labels.pod }}',
    'unicode é 模型 ✓',
    'nul\x00byte',
    '',
]


def parsed_matchers(text: str) -> dict[str, tuple[str, str]]:
    ast = promql_parser.parse(text)
    return {m.name: (m.value, str(m.op)) for m in ast.matchers.matchers}


# Regex matchers take a regex: these are hostile as strings yet valid RE2.
HOSTILE_REGEXES = ['a"b|c', 'back\\\\.slash', 'new\nline.*', '"} or vector(1) or up{a="', '"]', 'x\ty']


@pytest.mark.parametrize("value, op", [(v, op) for op in ("=", "!=") for v in HOSTILE]
                         + [(v, op) for op in ("=~", "!~") for v in HOSTILE_REGEXES], ids=repr)
def test_hostile_matcher_values_parse_back_exactly(value, op):
    text = check(Selector("vllm:num_requests_running", (Matcher("pod", value, op), Matcher("ns", "llm"))))
    matchers = parsed_matchers(text)
    assert matchers["pod"][0] == value
    assert matchers["pod"][1] == "MatchOp." + {"=": "Equal", "!=": "NotEqual", "=~": "Re", "!~": "NotRe"}[op]
    assert matchers["ns"][0] == "llm"


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_values_stay_strings_inside_larger_queries(value):
    """An injection attempt must not add operators: the query keeps one selector and one aggregation."""
    expr = agg("sum", rate(Selector("vllm:request_success_total", (Matcher("model_name", value),)), "5m"),
               ["namespace"])
    ast = promql_parser.parse(check(expr))
    assert type(ast).__name__ == "AggregateExpr"
    selector = ast.expr.args[0].vector_selector
    assert [m.value for m in selector.matchers.matchers if m.name == "model_name"] == [value]
    replaced = promql_parser.parse(check(label_replace(Selector("up"), "pod", value, "", "")))
    assert type(replaced).__name__ == "Call" and replaced.args[2].val == value
    assert promql_parser.parse(check(Str(value))).val == value


def test_matchers_from_spec_reads_operator_prefixes():
    assert matchers_from({"b": "~5..", "a": "x", "c": "!y", "d": "!~z"}) == (
        Matcher("a", "x", "="), Matcher("b", "5..", "=~"), Matcher("c", "y", "!="), Matcher("d", "z", "!~"))


def test_inline_filters_by_hostile_values_through_label_replace():
    """A label the record computes (relabelled dcgm-exporter pods) is filtered after, escaped."""
    relabelled = label_replace(Selector("DCGM_FI_DEV_POWER_USAGE"), "pod", "$1", "exported_pod", "(.+)")
    records = {"llm_gpu:power_watts:max": [({}, agg("max", relabelled, ["pod", "gpu"]))]}
    value = '"} or vector(1) #'
    text = check(inline(Selector("llm_gpu:power_watts:max", (Matcher("pod", value),)), records))
    assert value.replace('"', '\\"') in text and "DCGM_FI_DEV_POWER_USAGE, " in text and "vector(1), \"pod\"" in text
    with pytest.raises(PromQLError, match="only literal alternatives"):
        inline(Selector("llm_gpu:power_watts:max", (Matcher("pod", "chat-.*", "=~"),)), records)


def test_inline_pushes_matchers_to_the_selectors_a_label_comes_from():
    """A dashboard variable (a regex) reaches the raw selectors: the query reads one model's series."""
    owner = agg("group", Selector("owner"), ["pod", "team"])
    records = {"rec:x": [({}, BinOp("*", agg("sum", rate(Selector("raw_bucket"), "5m"), ["pod", "le"]), owner,
                                    on=("pod",), group_left=("team",)))]}
    text = check(inline(Selector("rec:x", (Matcher("pod", "$pod", "=~"), Matcher("team", "$team", "=~"))), records))
    assert 'raw_bucket{pod=~"$pod"}[5m]' in text and 'owner{pod=~"$pod", team=~"$team"}' in text
    assert "vector(1)" not in text


# (record, input series of pod p, output labels besides pod): a label kept, computed, or from a join.
RECORDS = {
    "pushed": (agg("sum", Selector("raw"), ["pod"]), lambda p: [f'raw{{pod="{p}"}}'], ""),
    "relabelled": (agg("sum", label_replace(Selector("raw"), "pod", "$1", "exported_pod", "(.+)"), ["pod"]),
                   lambda p: [f'raw{{pod="exporter", exported_pod="{p}"}}'], ""),
    "joined": (BinOp("*", agg("sum", Selector("raw"), ["pod"]), agg("group", Selector("owner"), ["pod", "team"]),
                     on=("pod",), group_left=("team",)),
               lambda p: [f'raw{{pod="{p}"}}', f'owner{{pod="{p}", team="t"}}'], ', team="t"'),
}


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("matcher, kept", [
    (Matcher("pod", "a|c", "=~"), {"a", "c"}),
    (Matcher("pod", "a|c", "!~"), {"b"}),
    (Matcher("pod", "b", "!="), {"a", "c"}),
    (Matcher("pod", "a\\.x|b", "=~"), {"b"}),
])
def test_inlined_matchers_select_what_the_selector_would(tmp_path, record, matcher, kept):
    """promtool evaluates the inlined query on real series: same pods as the matcher on a selector, whether
    the matcher is pushed to the raw selectors or filters a computed label."""
    expr, series, extra = RECORDS[record]
    expr = check(inline(Selector("rec:x", (matcher,)), {"rec:x": [({}, expr)]}))
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": s, "values": "1 1"} for p in "abc" for s in series(p)],
        "promql_expr_test": [{"expr": expr, "eval_time": "1m", "exp_samples": [
            {"labels": f'{{pod="{p}"{extra}}}', "value": 1} for p in sorted(kept)]}]}]}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(test))
    out = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_names_the_broken_query():
    with pytest.raises(PromQLError, match=r"query: sum by \(\(x\)"):
        check("sum by ((x)")


def test_numbers_render_as_promql_literals():
    assert [number(v) for v in (1.0, 0.5, 1e-9, float("inf"), float("-inf"))] == ["1", "0.5", "1e-09", "+Inf", "-Inf"]


def test_prometheus_itself_selects_series_by_hostile_values(tmp_path):
    """promtool (the Go PromQL engine) reads the same escaped text back to the same values."""
    values = [v for v in HOSTILE if v and "\x00" not in v]
    series = [{"series": f"probe{{value={_promtool_quote(v)}, i=\"{i}\"}}", "values": "1 1"}
              for i, v in enumerate(values)]
    tests = [{"expr": check(Selector("probe", (Matcher("value", v),))), "eval_time": "1m",
              "exp_samples": [{"labels": f"probe{{value={_promtool_quote(v)}, i=\"{i}\"}}", "value": 1}]}
             for i, v in enumerate(values)]
    path = tmp_path / "hostile.test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m",
                                    "tests": [{"interval": "1m", "input_series": series,
                                               "promql_expr_test": tests}]}, width=10_000))
    res = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def _promtool_quote(value: str) -> str:
    """promtool's series notation uses the same string escapes as PromQL."""
    return Str(value).render()


def test_at_is_part_of_the_tree_walk_and_transform_see_inside_it():
    pinned = Call("max_over_time", (At(Selector("llm_pod:x"), "1h", "1m", 1767225600.0),))
    assert [s.metric for s in selectors(pinned)] == ["llm_pod:x"]
    scoped = transform(pinned, lambda n: n.with_matchers(Matcher("pod", "p")) if isinstance(n, Selector) else None)
    assert check(scoped) == 'max_over_time(llm_pod:x{pod="p"}[1h] @ 1767225600.000)'


@pytest.mark.parametrize("value", ["Qwen/Qwen2.5-7B-Instruct$9", "team-$USER/llama", "a${x}b", "$1", "$$"])
def test_set_label_keeps_dollar_signs_literal_in_prometheus(tmp_path, value):
    """label_replace expands `$1` / `$name` in its replacement; set_label doubles `$` so the value stays."""
    expr = check(set_label(Call("vector", (Call("time", ()),)), "v", value))
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [],
        "promql_expr_test": [{"expr": f"count({expr}) by (v)", "eval_time": "0m",
                              "exp_samples": [{"labels": "{v=" + json.dumps(value) + "}", "value": 1}]}]}]}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(test))
    res = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_regex_escape_matches_exactly_the_value():
    for value in ["a.b", "x|y", "(p)", "back\\slash", "$1", "[]{}^*+?"]:
        assert re.fullmatch(regex_escape(value), value) and not re.fullmatch(regex_escape(value), value + "x")


POD_KEYS, MODEL_KEYS = ("namespace", "backend", "pod", "le"), ("namespace", "backend", "le")


def _two_engines_per_pod() -> Agg:
    """A model-tier bucket rate as records inline it: SGLang under two metric names (an `or` per pod),
    vLLM under one, each engine's pods given a `backend` where they lack one, then summed to the model."""
    pod, model = POD_KEYS, MODEL_KEYS
    fill = lambda e, b: label_replace(e, "backend", b, "backend", "")  # noqa: E731
    two_names = fill(agg("sum", rate(Selector("sglang:x_bucket"), "5m"), pod).or_(
        agg("sum", rate(Selector("sglang_x_bucket"), "5m"), pod)), "sglang")
    one_name = fill(agg("sum", rate(Selector("vllm:x_bucket"), "5m"), pod), "vllm")
    return agg("sum", two_names.or_(one_name), model)


def test_aggregate_once_sums_a_single_source_alternative_straight_to_the_outer_keys():
    """An engine whose signal has one source is summed to the model at once; an engine with two metric
    names (an `or` of sources) picks a name per pod, then is summed to the model under its label_replace,
    so the fill labels one series per model and bucket instead of one per pod and bucket."""
    got = aggregate_once(_two_engines_per_pod()).render()
    kept = '"inferwatch_before_fill_backend", "$1", "backend", "(.+)"'
    assert got == ('sum by (namespace, backend, le) (label_replace(label_replace(sum by (namespace, backend, le) '
                   '(sum by (namespace, backend, pod, le) (rate(sglang:x_bucket[5m])) or sum by (namespace, backend, '
                   f'pod, le) (rate(sglang_x_bucket[5m]))), {kept}), "backend", "sglang", "backend", "") or '
                   f'label_replace(label_replace(sum by (namespace, backend, le) (rate(vllm:x_bucket[5m])), {kept}), '
                   '"backend", "vllm", "backend", ""))')
    # a label_replace that writes a label the outer sum drops, or another operator, is left alone
    pod, model = POD_KEYS, MODEL_KEYS
    other = label_replace(agg("sum", Selector("x"), pod), "pod", "p", "pod", "")
    assert aggregate_once(agg("sum", other, model)) == agg("sum", other, model)
    assert aggregate_once(agg("sum", agg("max", Selector("x"), pod), model)) == agg("sum", agg("max", Selector("x"), pod), model)
    assert aggregate_once(agg("max", agg("max", Selector("x"), pod), model)) == agg("max", Selector("x"), model)



def test_aggregating_once_keeps_the_values_prometheus_computes(tmp_path):
    """promtool evaluates both forms on pods mid-upgrade: one on the old metric name, one on the new, one
    exposing both (the new one wins for it), beside a vLLM pod and one mid-rollout that already carries
    `backend` (summed with it, not refused as a duplicate label set). Summing once gives the same series
    and values as summing per pod first. A counter from 0 at 1m steps: rate()[5m] at 2m is its rise / 300."""
    per_pod = _two_engines_per_pod()
    once = aggregate_once(per_pod)
    assert once != per_pod
    series = [("sglang:x_bucket", "a", "0 75 150"), ("sglang_x_bucket", "b", "0 37.5 75"),
              ("sglang:x_bucket", "c", "0 37.5 75"), ("sglang_x_bucket", "c", "0 600 1200"),
              ("vllm:x_bucket", "d", "0 150 300")]
    inputs = [{"series": f'{name}{{namespace="n", pod="{p}", le="{le}"}}', "values": values}
              for name, p, values in series for le in ("1", "+Inf")]
    inputs.append({"series": 'vllm:x_bucket{namespace="n", pod="e", le="1", backend="vllm"}', "values": "0 37.5 75"})
    expected = [{"labels": '{namespace="n", backend="sglang", le="%s"}' % le, "value": (150 + 75 + 75) / 300}
                for le in ("1", "+Inf")] + [{"labels": '{namespace="n", backend="vllm", le="+Inf"}', "value": 300 / 300},
                                           {"labels": '{namespace="n", backend="vllm", le="1"}', "value": 375 / 300}]
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs,
        "promql_expr_test": [{"expr": check(e), "eval_time": "2m", "exp_samples": expected}
                             for e in (per_pod, once)]}]}
    path = tmp_path / "once.test.yaml"
    path.write_text(yaml.safe_dump(test, width=10_000))
    out = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

# ---- filters applied early: same answer from a real Prometheus --------------------------------------

def _gpu_series():
    """Seven GPUs of three pods (one GPU split in two MIG instances), an info series naming each GPU's pod,
    a fallback field in percent (u5 reports only that one), and a pod gauge; values move over ten minutes
    so every filter keeps some points and drops others."""
    t0 = 1_700_000_000
    owners = {("u0", ""): "a", ("u1", ""): "a", ("u2", ""): "b", ("u3", ""): "b", ("u4", "1"): "c", ("u4", "2"): "c",
              ("u5", ""): "c"}
    out = []
    for n, ((uuid, inst), pod) in enumerate(owners.items()):
        ids = {"UUID": uuid, "GPU_I_ID": inst}
        if uuid != "u5":
            out.append(({"__name__": "raw", **ids, "exported_pod": pod},
                        [(t0 + 60.0 * k, ((n * 7 + k * 3) % 10) / 10) for k in range(11)]))
        out.append(({"__name__": "raw_percent", **ids, "exported_pod": pod},
                    [(t0 + 60.0 * k, float((n * 30 + k * 17) % 100)) for k in range(11)]))
        out.append(({"__name__": "gpu:info", **ids, "pod": pod}, [(t0 + 60.0 * k, 1.0) for k in range(11)]))
    for n, pod in enumerate("abc"):
        out.append(({"__name__": "waiting", "pod": pod}, [(t0 + 60.0 * k, float((n + k) % 5)) for k in range(11)]))
    return t0, out


@pytest.fixture(scope="module")
def gpu_prometheus(tmp_path_factory):
    t0, series = _gpu_series()
    path = tmp_path_factory.mktemp("sift") / "gpus.om"
    with path.open("w") as out:
        write_openmetrics(series, out)
    with LocalPrometheus(path) as prom:
        yield prom, t0


def _range(prom, t0, expr) -> dict:
    result = prom.client().query_range(check(expr), t0, t0 + 600, 60, 30)
    return {json.dumps(s["metric"], sort_keys=True): s["values"] for s in result}


IDS = ("UUID", "GPU_I_ID")
FIELDS = {  # a GPU field joined to its pod, as core/records.py gpu_join(gpu_value) builds it; with a fallback field
    "one": agg("max", Selector("raw"), IDS),
    "fallback": BinOp("or", agg("max", Selector("raw"), IDS), BinOp("*", agg("max", Selector("raw_percent"), IDS),
                                                                      Num(0.01))),
}
WAITING = BinOp(">", Selector("waiting"), Num(2))
INFOS = {  # recorded, or computed from raw series as diagnose does without the rules (then narrowed too)
    "recorded": Selector("gpu:info"),
    "computed": agg("group", label_replace(Selector("raw_percent"), "pod", "$1", "exported_pod", "(.+)"),
                    ["UUID", "GPU_I_ID", "pod"]),
}


@pytest.mark.parametrize("info", INFOS)
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("op, value", [(">", 0.5), (">=", 0.6), ("<", 0.35), ("<=", 0.2)])
def test_sift_and_narrow_answer_what_the_filter_on_top_answers(gpu_prometheus, info, field, op, value):
    """The comparison moved below the aggregation and the join, and the pod condition moved onto both
    sides of the join, select the same points as both applied last (MIG instances included: `<` under
    `max` stays on top; a fallback field counts only where the first has no series)."""
    prom, t0 = gpu_prometheus
    joined = agg("max", BinOp("*", FIELDS[field], INFOS[info], on=IDS, group_left=("pod",)), ["pod", "UUID"])
    on_top = BinOp(op, joined, Num(value))
    sifted = sift(joined, op, value)
    assert _range(prom, t0, sifted) == _range(prom, t0, on_top) != {}
    narrowed = sift(narrow(joined, WAITING, ("pod",)), op, value)
    expected = _range(prom, t0, BinOp("and", on_top, WAITING, on=("pod",)))
    assert _range(prom, t0, narrowed) == expected != {}
    if info == "recorded":
        assert "raw and on (UUID, GPU_I_ID) (gpu:info and on (pod) waiting > 2)" in str(narrowed)
    if op in (">", ">="):  # pushed down to the raw selectors (and the computed info narrowed to them)
        assert f"raw {op} {value}" in str(sifted)
        assert ("raw_percent and on (UUID, GPU_I_ID) " in str(sifted)) == (info == "computed")
    else:
        assert str(sifted) == str(on_top)
