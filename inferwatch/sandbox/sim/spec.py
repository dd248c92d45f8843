"""A simulated model from its scenario YAML: `workload:`, `serving:`, `transfer:` (prefill/decode link),
`faults:` (see sim/faults.KINDS), `replicas:` (the Deployment's desired count, as kube-state-metrics reports it)."""
from __future__ import annotations

from dataclasses import fields
from typing import Callable

from .cluster import ModelSim, PodSpec
from .engine import Serving
from .faults import Fault
from .pd import Link
from .workload import Workload

_FAULT_KEYS = {"kind", "at", "until", "ramp", "pods", "gpus", "factor", "noise"}


def _typed(cls, data: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{k: type(getattr(cls(), k))(v) for k, v in data.items()})


def model_sim(m: dict, pods: list, duration: Callable) -> ModelSim:
    faults = []
    for i, f in enumerate(m.get("faults") or []):
        params = {k: float(v) for k, v in f.items() if k not in _FAULT_KEYS}
        faults.append(Fault(kind=str(f.get("kind")), at=duration(f.get("at"), 0.0), until=duration(f.get("until")),
                            ramp=duration(f.get("ramp"), 0.0), pods=tuple(f["pods"]) if f.get("pods") else None,
                            gpus=tuple(int(g) for g in f["gpus"]) if f.get("gpus") is not None else None,
                            factor=float(f.get("factor", 1.0)), noise=float(f.get("noise", 0.0)), params=params))
    return ModelSim(name=str(m.get("model", "")),
                    pods=[PodSpec(p.name, p.gpus, p.engines, p.role) for p in pods],
                    workload=_typed(Workload, dict(m.get("workload") or {}), "workload"),
                    serving=_typed(Serving, dict(m.get("serving") or {}), "serving"),
                    faults=faults, spare_gpus=int(m.get("spare_gpus", 0)),
                    transfer=_typed(Link, dict(m.get("transfer") or {}), "transfer"),
                    replicas=int(m["replicas"]) if m.get("replicas") is not None else None)
