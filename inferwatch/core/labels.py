"""The label contract every inferwatch alert carries, which Alertmanager routes on and the webhook reads.

`source` marks our alerts, `severity` picks the receiver, `tier` says where in the model -> pod -> GPU chain
an alert sits, and SLO burn alerts add `slo` and `burn_tier`. Routing, inhibition and the dashboard's alert
annotations match on these names and values only, never on individual alert names.
"""
from __future__ import annotations

from .config import Labels
from .promql import escape_value

SOURCE_LABEL, SOURCE = "source", "inferwatch"
SEVERITY = "severity"
SEVERITIES = ("critical", "warning", "info")  # critical pages, warning opens a ticket, info is kept quiet
TIER = "tier"
TIERS = ("model", "pod", "gpu")
SLO = "slo"
BURN_TIER = "burn_tier"
BURN_TIERS = ("page-outage", "page-fast", "page-slow", "ticket-fast", "ticket-slow")  # fastest first


def contract(severity: str, tier: str) -> dict[str, str]:
    """The labels of one alert rule (identity labels come from its expression)."""
    return {SOURCE_LABEL: SOURCE, SEVERITY: severity, TIER: tier}


def matcher(name: str, op: str, value: str) -> str:
    """One Alertmanager matcher in the classic syntax (0.25 and later), value quoted and escaped."""
    return f'{name}{op}"{escape_value(value)}"'


OURS = matcher(SOURCE_LABEL, "=", SOURCE)  # every inferwatch alert


def group_by(labels: Labels) -> list[str]:
    """One notification per model incident: the model's identity plus the alert name. The routing tree
    groups by it, and pull mode groups Alertmanager's active alerts the same way."""
    return [k for k in (labels.cluster, labels.namespace, labels.workload, labels.model) if k] + ["alertname"]
