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
from dataclasses import dataclass
from pathlib import Path

import pytest

from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.core.catalog import Source, load_catalog
from inferwatch.core.config import Config
from inferwatch.core.promql import BinOp, Call, Expr, Matcher, Num, Selector, check, inline, label_replace
from inferwatch.core.records import recording_groups, source_expr
from inferwatch.core.rules import record_index
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

    @property
    def pod(self) -> str:
        return self.path.stem.replace(".", "-")


def bodies() -> list[Body]:
    out = []
    for path in sorted(EXPOSITIONS.glob("*.prom")):
        engine, version = re.match(r"^(vllm|sglang)-(\d+(?:\.\d+)*)", path.stem).groups()
        out.append(Body(path, engine, tuple(int(x) for x in version.split("."))))
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


def scraped_series(body: Body) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    target = {"namespace": "llm", "pod": body.pod, "workload_name": "chat", "job": "inference",
              "instance": f"{body.pod}:8000"}
    return [({**labels, **target}, [(T0, value), (T1, advanced(labels, value, kind))])
            for labels, value, kind in parse_body(body.path.read_text())]


@pytest.fixture(scope="module")
def prometheus():
    buf = io.StringIO()
    write_openmetrics([s for body in bodies() for s in scraped_series(body)], buf)
    with LocalPrometheus(buf.getvalue()) as prom:
        yield prom


# ---- what the catalogs claim ---------------------------------------------------------------------

def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def claims(src: Source, version: tuple[int, ...]) -> bool:
    """Does the source say this version exposes it without extra flags? (since/until are inclusive;
    `until: 0.11` covers every 0.11.x)."""
    if src.requires:
        return False
    if src.since and version[:len(_version(src.since))] < _version(src.since):
        return False
    return not (src.until and version[:len(_version(src.until))] > _version(src.until))


def claimed_sources(body: Body, sig: Signal) -> list[Source]:
    return [s for s in load_catalog(body.engine).of(sig.name) if claims(s, body.version)]


def claimed_signals(body: Body) -> list[Signal]:
    """Pod-tier signals with a claimed source; a derived ratio when its inputs are claimed."""
    out = []
    for sig in SIGNALS:
        if sig.tier != "pod":
            continue
        inputs = sig.inputs
        if claimed_sources(body, sig) or (inputs and all(claimed_sources(body, next(s for s in SIGNALS if s.name == i))
                                                         for i in inputs)):
            out.append(sig)
    return out


def for_pod(expr: Expr, pod: str) -> Expr:
    """`expr` restricted to one pod's series (the pod label is kept by every pod-tier aggregation)."""
    probe = label_replace(Call("vector", (Num(1),)), "pod", pod, "", "")
    return BinOp("and", expr, probe, on=("pod",))


# ---- the tests -----------------------------------------------------------------------------------

CFG = Config()
INDEX = record_index(recording_groups(CFG))


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
               if not src.after_first_event for m in source_has_data(prometheus, body, sig, src)]
    assert not missing, f"{body.path.name} lacks what the {body.engine} catalog claims for it: {missing}"


@pytest.mark.parametrize("body", bodies(), ids=lambda b: b.path.stem)
def test_version_ranges_are_not_too_narrow(prometheus, body):
    """A source the catalog says this version lacks (since/until) must indeed be absent."""
    present = []
    for sig in (s for s in SIGNALS if s.tier == "pod"):
        for src in load_catalog(body.engine).of(sig.name):
            if not src.requires and not claims(src, body.version) and not source_has_data(prometheus, body, sig, src):
                present.append(f"{sig.name}: {src.metric} ({src.versions()})")
    assert not present, f"{body.path.name} exposes sources its catalog excludes for this version: {present}"


def test_bodies_cover_both_engines_and_advance_counters():
    found = {(b.engine, b.version[:2]) for b in bodies()}
    assert {("vllm", (0, 9)), ("vllm", (0, 11)), ("vllm", (0, 33)), ("sglang", (0, 4)), ("sglang", (0, 5))} <= found
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
