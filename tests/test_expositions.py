"""The catalogs match reality: real /metrics bodies resolve every normalized series claimed for them.

`fixtures/expositions/*.prom` are bodies produced by the engines' own metric code (how: see
fixtures/expositions/README.md). Each body is loaded at two timestamps 60 s apart (counters and
histograms advanced, gauges kept) with the target labels a scrape adds, backfilled into one real
Prometheus, and then, for every pod-tier signal whose catalog sources claim that engine version:
- the signal's pod-tier records, inlined down to raw series (as if no rules were deployed), return data;
- each claimed source on its own returns data, so no catalog line names a series the engine lacks.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.core import schema
from inferwatch.core.catalog import Source, load_catalog
from inferwatch.core.config import Config
from inferwatch.core.promql import (BinOp, Call, Expr, Matcher, Num, Selector, check, inline, label_replace,
                                   selectors, transform)
from inferwatch.generate import dashboard
from inferwatch.core.records import RATIOS, source_expr
from inferwatch.core.signals import POD, SIGNALS, Signal, record_names

EXPOSITIONS = Path(__file__).resolve().parent.parent / "fixtures" / "expositions"
T0 = 1767225600.0  # 2026-01-01T00:00:00Z
T1 = T0 + 60
ADVANCE = 10.0     # observations/increments added between the two scrapes
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Body:
    path: Path
    engine: str                # vllm | sglang
    version: tuple[int, ...]
    profile: str | None        # vllm: v1 | v0 (`-v0` in the file name)
    show_hidden: bool          # `-show-hidden-X.Y`: --show-hidden-metrics-for-version X.Y
    features: frozenset[str]   # `-lora-spec-nixl` / `-lora-spec-pd`: served with those features, events driven

    @property
    def catalog(self) -> str:
        """Bodies of a prefill/decode deployment are checked against the -pd catalog (a superset)."""
        return f"{self.engine}-pd" if "pd" in self.features else self.engine

    @property
    def pod(self) -> str:
        return self.path.stem.replace(".", "-")


def bodies() -> list[Body]:
    out = []
    for path in sorted(EXPOSITIONS.glob("*.prom")):
        engine, version = re.match(r"^(vllm|sglang)-(\d+(?:\.\d+)*)", path.stem).groups()
        profile = ("v0" if "-v0" in path.stem else "v1") if engine == "vllm" else None
        features = frozenset({"nixl": "pd"}.get(f, f) for f in ("lora", "spec", "nixl", "pd") if f"-{f}" in path.stem)
        out.append(Body(path, engine, tuple(int(x) for x in version.split(".")), profile,
                        "-show-hidden-" in path.stem, features))
    return out


def _unescape(value: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse_body(text: str) -> list[tuple[dict[str, str], float, str]]:
    """(labels with __name__, value, family type) per sample of a text-format body."""
    types: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsed line: {line!r}"
        name, inner, value = m.groups()
        labels = {"__name__": name, **{k: _unescape(v) for k, v in LABEL.findall(inner or "")}}
        family = next((name.removesuffix(p) for p in HISTOGRAM_PARTS if types.get(name.removesuffix(p)) == "histogram"),
                      name)
        out.append((labels, float(value), types.get(family, "untyped")))
    return out


def advanced(labels: dict[str, str], value: float, kind: str) -> float:
    """The value one minute later: counters and histograms received ADVANCE more observations, all in
    the lowest bucket (so every cumulative bucket, and the count, grow by ADVANCE)."""
    name = labels["__name__"]
    if kind == "counter" and name.endswith("_total"):
        return value + ADVANCE
    if kind == "histogram":
        return value + (ADVANCE * 0.001 if name.endswith("_sum") else ADVANCE)
    return value


def scraped_series(body: Body, pod: str | None = None, rename=lambda name: name, target: dict | None = None
                   ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    pod = pod or body.pod
    target = target if target is not None else {"namespace": "llm", "pod": pod, "workload_name": "chat",
                                                "job": "inference", "instance": f"{pod}:8000"}
    return [({**labels, "__name__": rename(labels["__name__"]), **target}, [(T0, value), (T1, advanced(labels, value, kind))])
            for labels, value, kind in parse_body(body.path.read_text())]


def _stem(stem: str) -> Body:
    return next(b for b in bodies() if b.path.stem == stem)


def underscored(name: str) -> str:
    return name.replace("sglang:", "sglang_", 1)


def colliding_series() -> list:
    """Names that collide or drift: SGLang stored with `_` (pod sglang-underscore), with both spellings
    (sglang-both), and a vLLM pod beside a router reusing `vllm:` names: the router's own series with a
    `server` label on the same pod, and a target outside the inference PodMonitor (no workload label)."""
    sg, vl = _stem("sglang-0.5.23"), _stem("vllm-0.33.0")
    router = {"namespace": "llm", "pod": "router-0", "job": "router", "instance": "router-0:8000"}
    return (scraped_series(sg, "sglang-underscore", underscored)
            + scraped_series(sg, "sglang-both") + scraped_series(sg, "sglang-both", underscored)
            + scraped_series(vl, "vllm-routed")
            + [({"__name__": "vllm:num_requests_running", "server": "http://vllm-routed:8000", "namespace": "llm",
                 "pod": "vllm-routed", "workload_name": "chat", "job": "inference", "instance": "vllm-routed:8000",
                 "model_name": "Qwen/Qwen2.5-7B-Instruct"}, [(T0, 500.0), (T1, 500.0)])]
            + scraped_series(vl, target=router))


@pytest.fixture(scope="module")
def prometheus():
    buf = io.StringIO()
    write_openmetrics([s for body in bodies() for s in scraped_series(body)] + colliding_series(), buf)
    with LocalPrometheus(buf.getvalue()) as prom:
        yield prom


# ---- what the catalogs claim ---------------------------------------------------------------------

def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _after(version: tuple[int, ...], bound: str | None) -> bool:
    return bool(bound) and version[:len(_version(bound))] > _version(bound)


def claims(src: Source, body: Body) -> bool:
    """Does the source say this body exposes it? (since/until are inclusive, `until: 0.11` covers every
    0.11.x; a default body stops at `until`, a show-hidden body at `hidden_until`; other flags never.)"""
    if (src.requires and src.feature not in body.features) or (src.profile and src.profile != body.profile):
        return False
    if src.since and body.version[:len(_version(src.since))] < _version(src.since):
        return False
    return not _after(body.version, src.hidden_until if body.show_hidden and src.hidden_until else src.until)


def claimed_sources(body: Body, sig: Signal) -> list[Source]:
    return [s for s in load_catalog(body.catalog).of(sig.name) if claims(s, body)]


def expected(src: Source, body: Body) -> bool:
    """A series created by its first event (a 5xx, a retraction, a transfer) is expected only in bodies
    whose capture drove those events (the feature bodies)."""
    return not src.after_first_event or src.feature in body.features


def claimed_signals(body: Body) -> list[Signal]:
    """Pod-tier signals with a claimed source present before any event; a derived ratio when its inputs
    are claimed."""
    out = []
    for sig in SIGNALS:
        if sig.tier != "pod":
            continue
        inputs = RATIOS[sig.name][:2] if sig.name in RATIOS else ()
        if any(expected(s, body) for s in claimed_sources(body, sig)) or (inputs and all(claimed_sources(body, next(s for s in SIGNALS if s.name == i))
                                                         for i in inputs)):
            out.append(sig)
    return out


def for_pod(expr: Expr, pod: str) -> Expr:
    """`expr` restricted to one pod's series (the pod label is kept by every pod-tier aggregation)."""
    probe = label_replace(Call("vector", (Num(1),)), "pod", pod, "", "")
    return BinOp("and", expr, probe, on=("pod",))


# ---- the tests -----------------------------------------------------------------------------------

CFG = Config()
INDEX = schema.records(CFG)


@pytest.mark.parametrize("body", bodies(), ids=lambda b: b.path.stem)
def test_every_claimed_pod_signal_resolves_on_the_real_body(prometheus, body):
    missing, checked = [], 0
    for sig in claimed_signals(body):
        for role, name in record_names(sig, POD, CFG.recording.rate_window).items():
            if name not in INDEX:
                continue
            query = check(inline(Selector(name, (Matcher("pod", body.pod),)), INDEX))
            checked += 1
            if not prometheus.query(query, T1):
                missing.append(f"{sig.name} ({name})")
    assert checked >= 20
    assert not missing, f"{body.path.name}: no data for {missing}"


def source_has_data(prometheus, body: Body, sig: Signal, src: Source) -> list[str]:
    """The parts of one catalog source (histograms: bucket, sum, count) with no data for the body's pod."""
    empty = []
    for part in (HISTOGRAM_PARTS if sig.kind == "histogram" else (None,)):
        expr = source_expr(src, sig, CFG.labels.pod_keys(), CFG.recording.rate_window, part and part[1:])
        if not prometheus.query(check(for_pod(expr, body.pod)), T1):
            empty.append(f"{sig.name}: {src.metric}{part or ''}")
    return empty


@pytest.mark.parametrize("body", bodies(), ids=lambda b: b.path.stem)
def test_every_claimed_catalog_source_exists_in_the_real_body(prometheus, body):
    """Sources marked `after_first_event` (a 5xx, a retraction) cannot show in a body without that event."""
    missing = [m for sig in claimed_signals(body) for src in claimed_sources(body, sig)
               if expected(src, body)
               for m in source_has_data(prometheus, body, sig, src)]
    assert not missing, f"{body.path.name} lacks what the {body.engine} catalog claims for it: {missing}"


@pytest.mark.parametrize("body", bodies(), ids=lambda b: b.path.stem)
def test_version_ranges_are_not_too_narrow(prometheus, body):
    """A series the catalog says this body lacks (profile, since/until, hidden window) must indeed be
    absent; one series listed under two profiles is judged once, by all its entries."""
    present = []
    for sig in (s for s in SIGNALS if s.tier == "pod"):
        srcs = load_catalog(body.catalog).of(sig.name)
        for src in load_catalog(body.catalog).series_of(sig.name):
            same = [s for s in srcs if s.series_key() == src.series_key()]
            if (not any(s.requires or claims(s, body) for s in same)
                    and not source_has_data(prometheus, body, sig, src)):
                present.append(f"{sig.name}: {src.metric} ({src.versions()})")
    assert not present, f"{body.path.name} exposes sources its catalog excludes for this version: {present}"


def test_bodies_cover_every_claimed_version_profile_and_hidden_window():
    """A default V1 body of each vLLM minor from 0.8, a V0 body of each minor 0.6-0.10, show-hidden
    bodies for both hidden windows, and SGLang bodies across the catalog's range."""
    found = {(b.engine, b.version[:2], b.profile, b.show_hidden) for b in bodies()}
    v1 = {(0, 8), (0, 9), (0, 10), (0, 11), (0, 13), (0, 14), (0, 33)}
    assert {("vllm", v, "v1", False) for v in v1} <= found
    assert {("vllm", (0, m), "v0", False) for m in (6, 7, 8, 9, 10)} <= found
    assert {("vllm", (0, 11), "v1", True), ("vllm", (0, 13), "v1", True), ("vllm", (0, 8), "v0", True)} <= found
    surfaces = {(b.engine, b.version[:2]) for b in bodies() if b.features >= {"lora", "spec", "pd"}}
    assert {("vllm", (0, 14)), ("vllm", (0, 16)), ("vllm", (0, 33)), ("sglang", (0, 4)), ("sglang", (0, 5))} <= surfaces
    sglang = {b.version[:3] for b in bodies() if b.engine == "sglang"}
    assert {(0, 4, 4), (0, 4, 6), (0, 4, 10), (0, 5, 1), (0, 5, 3), (0, 5, 10), (0, 5, 23)} <= sglang


def _pod_value(prometheus, body: Body, record: str) -> list[float]:
    query = check(inline(Selector(record, (Matcher("pod", body.pod),)), INDEX))
    return [float(r["value"][1]) for r in prometheus.query(query, T1)]


def test_v0_and_hidden_names_resolve_the_same_signals(prometheus):
    """V0 (no `engine` label, a hit-rate gauge instead of counters) gives KV usage, ITL and the hit
    ratio; a default 0.11 body has only the new KV name, a show-hidden one both, counted once."""
    by_stem = {b.path.stem: b for b in bodies()}
    w = CFG.recording.rate_window
    hit = record_names(next(s for s in SIGNALS if s.name == "prefix_cache_hit"), POD, w)["ratio"]
    kv = record_names(next(s for s in SIGNALS if s.name == "kv_cache_usage"), POD, w)["value"]
    assert _pod_value(prometheus, by_stem["vllm-0.7.3-v0"], hit) == [pytest.approx(0.37)]
    assert _pod_value(prometheus, by_stem["vllm-0.8.5-v0"], hit) == []          # hidden in 0.8 by default
    assert _pod_value(prometheus, by_stem["vllm-0.8.5-v0-show-hidden-0.7"], hit) == [pytest.approx(0.37)]
    for stem in ("vllm-0.7.3-v0", "vllm-0.11.0", "vllm-0.11.0-show-hidden-0.10", "vllm-0.9.2"):
        assert _pod_value(prometheus, by_stem[stem], kv) == [pytest.approx(0.41)], stem
    default = parse_body(by_stem["vllm-0.11.0"].path.read_text())
    assert not any(lb["__name__"] == "vllm:gpu_cache_usage_perc" for lb, _, _ in default)


def test_bodies_advance_counters():
    labels, samples = next((lb, s) for lb, s in scraped_series(bodies()[0])
                           if lb["__name__"].endswith("_count") and "_created" not in lb["__name__"])
    assert samples[1][1] == samples[0][1] + ADVANCE and samples[1][0] - samples[0][0] == 60



@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_catalog_buckets_are_the_engines_real_boundaries(engine):
    """The catalogs' bucket lists feed SLO threshold checks and the scenario synthesizer, so they must be
    exactly the `le` values the newest engine release writes (token lengths: for this body's model)."""
    body = max((b for b in bodies() if b.engine == engine), key=lambda b: b.version)
    les: dict[str, set[float]] = {}
    for labels, _, _ in parse_body(body.path.read_text()):
        if labels["__name__"].endswith("_bucket") and labels["le"] != "+Inf":
            les.setdefault(labels["__name__"].removesuffix("_bucket"), set()).add(float(labels["le"]))
    cat = load_catalog(engine)
    checked = 0
    for signal, bounds in cat.buckets.items():
        metric = next(s.metric for s in cat.of(signal) if s.metric in les)
        assert sorted(bounds) == sorted(les[metric]), f"{engine} {signal} ({metric})"
        checked += 1
    assert checked == len(cat.buckets) >= 6


def _signal_value(prometheus, pod: str, signal_name: str, role: str) -> list[float]:
    sig = next(s for s in SIGNALS if s.name == signal_name)
    name = record_names(sig, POD, CFG.recording.rate_window)[role]
    query = check(inline(Selector(name, (Matcher("pod", pod),)), INDEX))
    return sorted(float(r["value"][1]) for r in prometheus.query(query, T1))


def test_sglang_underscore_spelling_resolves_every_signal_and_never_double_counts(prometheus):
    body = _stem("sglang-0.5.23")
    for sig in claimed_signals(body):
        role = next(iter(record_names(sig, POD, CFG.recording.rate_window)))
        if record_names(sig, POD, CFG.recording.rate_window)[role] not in INDEX:
            continue
        colon = _signal_value(prometheus, body.pod, sig.name, role)
        assert colon, sig.name
        assert _signal_value(prometheus, "sglang-underscore", sig.name, role) == colon, sig.name
        assert _signal_value(prometheus, "sglang-both", sig.name, role) == colon, sig.name


def test_router_series_and_foreign_targets_stay_out_of_the_pod_tier(prometheus):
    """The router's `vllm:num_requests_running{server=...}` (500) on an engine pod is not added to the
    engine's 24, and a target outside the inference PodMonitor records nothing."""
    assert _signal_value(prometheus, "vllm-routed", "requests_running", "value") == [24.0]
    for signal_name, role in (("requests_running", "value"), ("requests", "rate"), ("ttft_seconds", "count")):
        assert _signal_value(prometheus, "router-0", signal_name, role) == [], signal_name


@pytest.mark.parametrize("stem, expected", [
    # vLLM: LoRA from the newest lora_requests_info series (2 running, 1 waiting, --max-loras 4); spec
    # and NIXL counters each advanced by ADVANCE in the minute, so the ratios are 10/10 and 1 + 10/10.
    ("vllm-0.14.0-lora-spec-nixl", {("lora_adapters_running", "value"): 2, ("lora_adapters_waiting", "value"): 1,
                                    ("lora_adapters_max", "value"): 4, ("spec_accept_rate", "ratio"): 1.0,
                                    ("spec_accept_length", "ratio"): 2.0, ("kv_transfers", "rate"): None}),
    ("vllm-0.33.0-lora-spec-nixl", {("lora_adapters_running", "value"): 2, ("kv_transfer_queue", "value"): 0,
                                    ("kv_transfer_timeouts", "rate"): None}),
    # SGLang: gauges as the scheduler set them. (None: a rate, positive.)
    ("sglang-0.5.23-lora-spec-pd", {("spec_accept_length", "ratio"): 2.6, ("spec_accept_rate", "ratio"): 0.53,
                                    ("lora_adapters_running", "value"): 4, ("lora_adapters_max", "value"): 4,
                                    ("kv_bootstrap_queue", "value"): 2, ("kv_prealloc_queue", "value"): 1,
                                    ("kv_transfer_queue", "value"): 3}),
    ("sglang-0.4.6.post5-lora-spec-pd", {("kv_bootstrap_queue", "value"): 0, ("spec_accept_length", "ratio"): 2.6}),
])
def test_surface_signals_have_the_engines_values(prometheus, stem, expected):
    pod = _stem(stem).pod
    for (signal_name, role), value in expected.items():
        got = _signal_value(prometheus, pod, signal_name, role)
        assert (len(got) == 1 and got[0] > 0) if value is None else got == [pytest.approx(value)], signal_name


def grafana(node, values: dict[str, str]):
    """Grafana's interpolation of one selected value: `x=~"$x"` becomes `x="value"`."""
    if isinstance(node, Selector):
        return replace(node, matchers=tuple(Matcher(m.name, values[m.value[1:]]) if m.value.startswith("$") else m
                                            for m in node.matchers))
    return None


SURFACE_ROWS = ("Prefill/decode KV transfer", "Speculative decoding", "LoRA adapters")


@pytest.mark.parametrize("stem", ["vllm-0.33.0-lora-spec-nixl", "vllm-0.14.0-lora-spec-nixl",
                                  "sglang-0.5.23-lora-spec-pd", "sglang-0.5.10-lora-spec-pd"])
def test_surface_panels_show_real_bodies(prometheus, stem):
    """Every query of the LoRA, speculative-decoding and KV-transfer rows, with the dashboard variables
    set, returns data for a body of a backend and version its description claims (with the features on),
    and nothing where it claims the backend has no such series."""
    body = _stem(stem)
    values = {"namespace": "llm", "workload_name": "chat", "model_name": "Qwen/Qwen2.5-7B-Instruct"}
    missing, unexpected, checked = [], [], 0
    for _, section in dashboard.sections(CFG):
        if section.title not in SURFACE_ROWS:
            continue
        for panel in section.panels:
            for target in panel.targets:
                expr = inline(transform(target.expr, lambda n: grafana(n, values)), INDEX)
                per_pod = not all(sel.metric.startswith("llm_model:") for sel in selectors(target.expr))
                query = check(for_pod(expr, body.pod) if per_pod else expr)  # model tier: every body's pods
                got = prometheus.query(query, T1)
                checked += 1
                claimed = all(any(claims(s, body) for s in schema.sources(body.catalog, name))
                              for name in target.signals)
                if claimed and not got:
                    missing.append(f"{panel.title} / {target.name}")
                if not dashboard.target_support(body.catalog, target).available and got:
                    unexpected.append(f"{panel.title} / {target.name}")
    assert checked >= 14
    assert not missing, f"{stem}: no data for {missing}"
    assert not unexpected, f"{stem}: data where unsupported: {unexpected}"
