"""Backend catalogs: YAML data mapping each normalized signal to an engine's exposed series.

One file per backend (`catalogs/vllm.yaml`, `sglang.yaml`, the `-pd` variants that extend them) and one
for dcgm-exporter. This module only loads and checks them; `recording.py` turns them into rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from .promql import Matcher, Selector, matchers_from
from .signals import BY_NAME

CATALOG_DIR = Path(__file__).parent / "catalogs"

SourceKind = Literal["counter", "gauge", "histogram", "gauge_events", "label_count", "label_value"]
_CATALOG_KEYS = {"engine", "extends", "display", "versions", "requires", "profiles", "targets", "spellings",
                 "collectors", "signals", "buckets"}
_SOURCE_KEYS = {"metric", "match", "set", "keep", "collector", "kind", "scale", "since", "until", "note",
                "requires", "per_model", "after_first_event", "profile", "hidden_until", "feature", "label"}


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
    # The engine profile exposing it (vLLM: v0 or v1); None: every profile.
    profile: str | None = None
    # Versions after `until` up to this one still expose it with --show-hidden-metrics-for-version.
    hidden_until: str | None = None
    # The serving feature (lora, spec, pd) whose flag (`requires`) or first event (`after_first_event`)
    # brings the series: tests expect it in bodies captured with that feature.
    feature: str | None = None
    # label_count / label_value kinds: the info label holding a comma-joined list / a number.
    label: str | None = None
    # Matchers every series of the backend needs (catalog `targets:`; records add the workload label):
    # they keep series of other exporters that reuse the engine's names out of the pod tier.
    target_match: tuple[Matcher, ...] = ()

    def series_key(self) -> tuple:
        """What the recorded expression depends on: two profiles' entries of one name record once."""
        return (self.metric, self.kind, self.match, self.set_labels, self.keep, self.collector, self.scale,
                self.per_model)

    def hidden_flag(self) -> str | None:
        """The flag restoring a hidden name: the previous minor release, as vLLM's server expects."""
        return "--show-hidden-metrics-for-version=<previous minor>" if self.hidden_until else None

    def selector(self, suffix: str = "") -> Selector:
        return Selector(self.metric + suffix, self.match + self.collector.match + self.target_match)

    def versions(self) -> str:
        if self.since and self.until:
            text = f"{self.since} - {self.until}"
        elif self.since:
            text = f">= {self.since}"
        elif self.until:
            text = f"<= {self.until}"
        else:
            text = "all"
        if self.hidden_until:
            text += f" (to {self.hidden_until} with {self.hidden_flag()})"
        return text


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
    profiles: dict[str, str] = field(default_factory=dict)  # engine profile -> what it is (vLLM V1 / V0)
    # Other spellings of the engine's name prefix that pipelines store (`sglang:` -> `sglang_`).
    spellings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    targets: tuple[Matcher, ...] = ()  # matchers on every series of the backend (see Source.target_match)

    def of(self, signal: str, profile: str | None = None) -> tuple[Source, ...]:
        """A signal's sources in order; with `profile`, only those that profile exposes."""
        srcs = self.sources.get(signal, ())
        return srcs if profile is None else tuple(s for s in srcs if s.profile in (None, profile))

    def series_of(self, signal: str) -> tuple[Source, ...]:
        """The sources to record, in order: one per distinct series (profiles may list one name twice),
        each followed by its other spellings, so `or` takes the first spelling a pod has."""
        seen, out = set(), []
        for s in self.of(signal):
            if s.series_key() in seen:
                continue
            seen.add(s.series_key())
            out.append(s)
            for prefix, others in self.spellings.items():
                if s.metric.startswith(prefix):
                    out += [replace(s, metric=o + s.metric[len(prefix):]) for o in others]
        return tuple(out)

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
    unknown = set(data) - _CATALOG_KEYS
    if unknown:
        raise CatalogError(f"{path}: unknown keys {sorted(unknown)}")
    base = load_catalog(data["extends"]) if data.get("extends") else None
    collectors = dict(base.collectors) if base else {}
    for cname, spec in (data.get("collectors") or {}).items():
        spec = spec or {}
        collectors[cname] = Collector(tuple(spec.get("partition", ())), bool(spec.get("replicated", False)),
                                      matchers_from(spec.get("match")))
    profiles = dict(base.profiles) if base else {}
    target_match = matchers_from(data["targets"]) if "targets" in data else (base.targets if base else ())
    spellings = {k: tuple(v) for k, v in (data.get("spellings") or (base.spellings if base else {})).items()}
    profiles.update(data.get("profiles") or {})
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
            if item.get("profile") is not None and item["profile"] not in profiles:
                raise CatalogError(f"{where}: unknown profile {item['profile']!r} (declare it under profiles:)")
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
                after_first_event=bool(item.get("after_first_event", False)),
                profile=item.get("profile"), hidden_until=_v(item.get("hidden_until")),
                feature=item.get("feature"), label=item.get("label"),
                target_match=target_match))
        sources[sig] = tuple(built)
    buckets = dict(base.buckets) if base else {}
    buckets.update({k: tuple(float(x) for x in v) for k, v in (data.get("buckets") or {}).items()})
    return Catalog(engine=data["engine"], display=data.get("display", data["engine"]),
                   versions=data.get("versions", base.versions if base else ""),
                   requires=data.get("requires", base.requires if base else ""),
                   sources=sources, buckets=buckets, collectors=collectors, path=path, profiles=profiles,
                   spellings=spellings, targets=target_match)


def _default_kind(signal_kind: str) -> SourceKind:
    return {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "ratio": "gauge"}[signal_kind]


def _v(value) -> str | None:
    return None if value is None else str(value)


def parent(backend: str) -> str:
    """The engine family of a backend: vllm-pd -> vllm."""
    return backend.removesuffix("-pd")
