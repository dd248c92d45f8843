"""Backend catalogs: YAML data mapping each normalized signal to an engine's exposed series.

One file per backend (`catalogs/vllm.yaml`, `sglang.yaml`, the `-pd` variants that extend them) and one
for dcgm-exporter. This module only loads and checks them; `recording.py` turns them into rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from .promql import Matcher, Selector, matchers_from
from .signals import BY_NAME

CATALOG_DIR = Path(__file__).parent / "catalogs"

SourceKind = Literal["counter", "gauge", "histogram", "gauge_events"]
_SOURCE_KEYS = {"metric", "match", "set", "keep", "collector", "kind", "scale", "since", "until", "note",
                "requires", "per_model", "after_first_event"}


@dataclass(frozen=True)
class Collector:
    """How an engine's ranks relate: `partition` labels split work (summed over), and when
    `replicated`, every other extra label repeats the same value (max over it)."""
    partition: tuple[str, ...] = ()
    replicated: bool = False
    match: tuple[Matcher, ...] = ()


@dataclass(frozen=True)
class Source:
    signal: str
    metric: str
    kind: SourceKind
    match: tuple[Matcher, ...] = ()
    set_labels: tuple[tuple[str, str], ...] = ()
    keep: tuple[str, ...] = ()
    collector: Collector = field(default_factory=Collector)
    scale: float | None = None
    since: str | None = None
    until: str | None = None
    note: str | None = None
    requires: str | None = None
    per_model: bool = True
    # The engine creates the series only when the first such event happens (a labelled counter with no
    # pre-created children): absent, not zero, until then, so a fallback or `or` covers the gap.
    after_first_event: bool = False

    def selector(self, suffix: str = "") -> Selector:
        return Selector(self.metric + suffix, self.match + self.collector.match)

    def versions(self) -> str:
        if self.since and self.until:
            return f"{self.since} - {self.until}"
        if self.since:
            return f">= {self.since}"
        if self.until:
            return f"<= {self.until}"
        return "all"


@dataclass(frozen=True)
class Catalog:
    engine: str
    display: str
    versions: str
    requires: str
    sources: dict[str, tuple[Source, ...]]
    buckets: dict[str, tuple[float, ...]]
    collectors: dict[str, Collector]
    path: Path

    def of(self, signal: str) -> tuple[Source, ...]:
        return self.sources.get(signal, ())

    def metrics(self) -> set[str]:
        return {s.metric for srcs in self.sources.values() for s in srcs}


class CatalogError(ValueError):
    pass


@cache
def load_catalog(name: str) -> Catalog:
    path = CATALOG_DIR / f"{name}.yaml"
    if not path.exists():
        raise CatalogError(f"no catalog for {name!r} (looked for {path})")
    data = yaml.safe_load(path.read_text()) or {}
    base = load_catalog(data["extends"]) if data.get("extends") else None
    collectors = dict(base.collectors) if base else {}
    for cname, spec in (data.get("collectors") or {}).items():
        spec = spec or {}
        collectors[cname] = Collector(tuple(spec.get("partition", ())), bool(spec.get("replicated", False)),
                                      matchers_from(spec.get("match")))
    default_collector = Collector()
    sources = dict(base.sources) if base else {}
    for sig, items in (data.get("signals") or {}).items():
        if sig not in BY_NAME:
            raise CatalogError(f"{path}: signals.{sig}: not a normalized signal (see inferwatch/core/signals.py)")
        built = []
        for i, item in enumerate(items):
            where = f"{path}: signals.{sig}[{i}]"
            unknown = set(item) - _SOURCE_KEYS
            if unknown:
                raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
            cname = item.get("collector")
            if cname is not None and cname not in collectors:
                raise CatalogError(f"{where}: unknown collector {cname!r}")
            kind = item.get("kind") or _default_kind(BY_NAME[sig].kind)
            built.append(Source(
                signal=sig, metric=item["metric"], kind=kind, match=matchers_from(item.get("match")),
                set_labels=tuple(sorted((item.get("set") or {}).items())), keep=tuple(item.get("keep", ())),
                collector=collectors[cname] if cname else default_collector,
                scale=item.get("scale"), since=_v(item.get("since")), until=_v(item.get("until")),
                note=item.get("note"), requires=item.get("requires"), per_model=item.get("per_model", True),
                after_first_event=bool(item.get("after_first_event", False))))
        sources[sig] = tuple(built)
    buckets = dict(base.buckets) if base else {}
    buckets.update({k: tuple(float(x) for x in v) for k, v in (data.get("buckets") or {}).items()})
    return Catalog(engine=data["engine"], display=data.get("display", data["engine"]),
                   versions=data.get("versions", base.versions if base else ""),
                   requires=data.get("requires", base.requires if base else ""),
                   sources=sources, buckets=buckets, collectors=collectors, path=path)


def _default_kind(signal_kind: str) -> SourceKind:
    return {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "ratio": "gauge"}[signal_kind]


def _v(value) -> str | None:
    return None if value is None else str(value)


def parent(backend: str) -> str:
    """The engine family of a backend: vllm-pd -> vllm."""
    return backend.removesuffix("-pd")
