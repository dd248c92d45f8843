"""The normalized schema as both pipelines read it: what a recorded series is made of, which labels
identify an entity of each tier, and which backends (and versions) can fill a signal.

`generate` renders the records into rule files; `diagnose` reads the same index to rewrite a query onto
raw engine metrics when the rules are not deployed. Both get support from here, so the dashboard's panel
descriptions, the runbooks' matrix and docs/schema.md cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from .catalog import Source, load_catalog
from .config import Alerts, Config, Labels
from .promql import Expr
from .records import layered_groups, query_time_names
from .rules import record_index
from .signals import signal

Tier = Literal["model", "pod", "gpu"]
GPU_SOURCE = "dcgm"  # the catalog every GPU-tier signal comes from, whatever the engine
RecordIndex = dict[str, list[tuple[dict[str, str], Expr]]]


# ---- recorded series -> expressions -------------------------------------------------------------------

def records(cfg: Config) -> RecordIndex:
    """Record name -> [(static labels, expression)] for this config (built once per settings): every
    record of the schema, written or computed at query time (`query_time`), as the tiers define it."""
    return _records(cfg.backends, cfg.labels, cfg.recording, cfg.gpu, cfg.alerts.gpu_fb_used_ratio, cfg.diagnose)


def query_time(cfg: Config) -> RecordIndex:
    """The records no rule file writes: whoever reads one inlines it (`promql.inline`)."""
    names = query_time_names(cfg)
    return {k: v for k, v in records(cfg).items() if k in names}


@lru_cache(maxsize=8)
def _records(backends, labels, recording, gpu, fb_used_ratio, diagnose) -> RecordIndex:
    """Keyed on the settings records read (and the thresholds of the GPU fault floors: records.gpu_floors)."""
    alerts = replace(Alerts(), gpu_fb_used_ratio=fb_used_ratio)
    return record_index(layered_groups(Config(backends=backends, labels=labels, recording=recording, gpu=gpu,
                                              alerts=alerts, diagnose=diagnose)))


# ---- entity keys ---------------------------------------------------------------------------------------

def tier_keys(labels: Labels, tier: Tier) -> tuple[str, ...]:
    """The labels that identify one entity of a tier (a GPU also names the workload using it)."""
    if tier == "model":
        return labels.model_keys()
    if tier == "pod":
        return labels.pod_keys()
    return tuple(dict.fromkeys(labels.gpu_keys() + (labels.workload, labels.backend, labels.role)))


def sibling_keys(labels: Labels, tier: Tier) -> tuple[str, ...]:
    """Siblings compared with each other: pods of one model, GPUs of one workload (roles kept apart)."""
    mk = labels.model_keys()
    return mk if tier != "gpu" else tuple(k for k in mk if k != labels.model)


# ---- backend support -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Support:
    """Whether a default deployment of a backend fills a signal, and under which conditions."""
    available: bool
    since: str | None = None  # every usable source needs at least this version
    requires: str | None = None  # every source needs this flag or exporter CSV

    @property
    def rank(self) -> int:
        """0 always, 1 from a version, 2 with a flag, 3 never: lower is better."""
        return 3 if not self.available else 2 if self.requires else 1 if self.since else 0

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(c for c in (self.since and f">= {self.since}", self.requires and f"needs {self.requires}") if c)

    def text(self) -> str:
        if not self.available:
            return "not available"
        if self.requires:
            return f"needs {self.requires}"
        return f"yes (>= {self.since})" if self.since else "yes"


def sources(backend: str, name: str) -> tuple[Source, ...]:
    """A signal's catalog sources for a backend (GPU signals: dcgm-exporter's). A derived signal also
    counts its inputs' sources when every input exists."""
    sig = signal(name)
    cat = load_catalog(GPU_SOURCE if sig.tier == "gpu" else backend)
    direct = cat.of(name)
    if sig.inputs and all(cat.of(i) for i in sig.inputs):
        return direct + tuple(s for i in sig.inputs for s in cat.of(i))
    return direct


def support(backend: str, name: str) -> Support:
    srcs = sources(backend, name)
    if not srcs:
        return Support(False)
    plain = [s for s in srcs if not s.requires]
    usable = plain or list(srcs)
    since = min((s.since for s in usable), key=version_key) if all(s.since for s in usable) else None
    return Support(True, since, None if plain else srcs[0].requires)


def available_at(backend: str, names: tuple[str, ...], version: str | None) -> bool:
    """True when a default deployment of `backend` at `version` exposes every signal in `names` (a source
    whose version range covers it and that needs no extra flag or exporter CSV)."""
    def covered(src: Source) -> bool:
        if src.requires:
            return False
        if version is None:
            return True
        v = version_key(version)
        return (not src.since or version_key(src.since) <= v) and (not src.until or v <= version_key(src.until))
    return all(any(covered(s) for s in sources(backend, name)) for name in names)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())
